"""model=cnn / cnn_bn / resnet18, torchvision weights, freeze_backbone, head_lr, init_from."""

import math

import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from torch import nn

from fmnist_lightning.config.schema import ConfigValidationError, validate_config
from fmnist_lightning.models.checkpoint_file import CheckpointError
from fmnist_lightning.models.module import FashionMNISTModule, build_network, load_module
from fmnist_lightning.models.resnet import ResNet18
from fmnist_lightning.models.transfer import (
    adapt_stem_weight,
    load_starting_weights,
    load_torchvision_weights,
)
from fmnist_lightning.models.vgg import VGGStyleCNN
from fmnist_lightning.train import train
from fmnist_lightning.training.builders import build_module
from helpers.compose import compose, tiny

CLASS_NAMES = [str(i) for i in range(10)]
# A narrow seed network, so that test fits take a second or two.
SMALL_CNN = ["model.net.blocks=[[8],[16]]", "model.net.dense=[16]", "model.net.first_kernel_size=3"]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def network_of(tmp_path, *overrides: str) -> nn.Module:
    cfg = compose("train", [f"paths.run_dir={tmp_path}", *overrides])
    return build_network(OmegaConf.to_container(cfg.model.net), num_classes=10)


@pytest.mark.parametrize(
    ("overrides", "parameters", "batch_norms"),
    [
        ((), 1_413_834, (0, 0)),
        (("model=cnn_bn",), 1_414_666, (5, 0)),
        (("model=cnn_bn", "model.net.dense_batch_norm=true"), 1_414_858, (5, 2)),
        (("model=resnet18",), 11_172_810, (20, 0)),
    ],
)
def test_each_model_config_builds_its_network(tmp_path, overrides, parameters, batch_norms):
    network = network_of(tmp_path, *overrides)
    assert count(network) == parameters
    kinds = (nn.BatchNorm2d, nn.BatchNorm1d)
    assert tuple(sum(isinstance(m, k) for m in network.modules()) for k in kinds) == batch_norms
    network.eval()
    assert network(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_batch_norm_follows_every_convolution_which_drops_its_bias():
    layers = list(VGGStyleCNN(batch_norm=True).features)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
    assert len(convs) == 5
    for i in convs:
        assert layers[i].bias is None
        assert isinstance(layers[i + 1], nn.BatchNorm2d)
        assert layers[i + 1].num_features == layers[i].out_channels


def test_keras_initialisation_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    network = VGGStyleCNN(weight_init="keras")
    for layer in network.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            fan_out = layer.weight.shape[0] * layer.weight[0, 0].numel()
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.9 * bound  # spread over the whole range
            assert torch.count_nonzero(layer.bias) == 0
    # PyTorch's defaults keep non-zero biases.
    assert torch.count_nonzero(VGGStyleCNN().classifier[-1].bias) > 0
    with pytest.raises(ValueError, match="weight_init"):
        VGGStyleCNN(weight_init="glorot")


def test_kaiming_initialisation_has_he_variance_and_keeps_the_signal_through_the_relus():
    torch.manual_seed(0)
    network = VGGStyleCNN(weight_init="kaiming")
    for layer in network.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
            assert torch.count_nonzero(layer.bias) == 0

    def feature_std(weight_init: str) -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return VGGStyleCNN(weight_init=weight_init).features(torch.randn(64, 1, 28, 28)).std()

    # PyTorch's default shrinks the activations layer after layer; He's keeps their scale.
    assert feature_std("kaiming") > 0.5
    assert feature_std("pytorch") < 0.5 * feature_std("kaiming")


def test_resnet_stem_is_3x3_stride_1_without_max_pool():
    network = ResNet18()
    assert network.conv1.kernel_size == (3, 3) and network.conv1.stride == (1, 1)
    assert network.conv1.in_channels == 1
    assert isinstance(network.maxpool, nn.Identity)
    assert network.fc.out_features == 10
    # The four stages see 28, 14, 7 and 4 pixels.
    sizes = []
    hooks = [
        getattr(network, f"layer{i}").register_forward_hook(
            lambda _m, _i, out: sizes.append(out.shape[-1])
        )
        for i in range(1, 5)
    ]
    network(torch.randn(2, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    assert sizes == [28, 14, 7, 4]


@pytest.fixture(scope="module")
def torchvision_weights(tmp_path_factory):
    """A torchvision-format ResNet-18 state dict on disk (random weights: nothing downloads)."""
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, path)
    return path, state


def test_torchvision_weights_load_with_an_adapted_stem_and_a_fresh_head(torchvision_weights):
    path, source = torchvision_weights
    network = ResNet18()
    fresh_fc = network.fc.weight.detach().clone()
    report = load_torchvision_weights(network, path)
    assert report["adapted"] == ["conv1.weight"]
    assert sorted(report["reinitialised"]) == ["fc.bias", "fc.weight"]
    assert len(report["kept"]) == len(source) - 3
    loaded = network.state_dict()
    for name in report["kept"]:
        assert torch.equal(loaded[name], source[name]), name
    assert torch.equal(network.fc.weight, fresh_fc)
    stem = loaded["conv1.weight"]
    assert stem.shape == (64, 1, 3, 3)
    # Summed over colours, resized, and rescaled so each filter's total weight is kept.
    assert torch.allclose(stem.sum(dim=(1, 2, 3)), source["conv1.weight"].sum(dim=(1, 2, 3)))
    assert torch.allclose(
        adapt_stem_weight(source["conv1.weight"], torch.Size((64, 3, 7, 7))),
        source["conv1.weight"],
    )


def test_unusable_weight_files_give_clear_errors(tmp_path):
    with pytest.raises(
        CheckpointError, match="model.weights: .*missing.pth' could not be read .*No such file"
    ):
        load_torchvision_weights(ResNet18(), tmp_path / "missing.pth")
    vgg = tmp_path / "vgg.pth"
    torch.save(VGGStyleCNN().state_dict(), vgg)
    with pytest.raises(ValueError, match="does not fit ResNet18"):
        load_torchvision_weights(ResNet18(), vgg)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="could not be read"):
        load_torchvision_weights(ResNet18(), garbage)


def resnet_classifier(
    head_lr: float | None = None, scheduler: dict | None = None, **net_options
) -> FashionMNISTModule:
    net = {"_target_": "fmnist_lightning.models.resnet.ResNet18", "in_channels": 1, **net_options}
    return FashionMNISTModule(
        net=net,
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.0},
        scheduler=scheduler,
        label_smoothing=0.0,
        class_names=CLASS_NAMES,
        mean=0.0,
        std=1.0,
        head_lr=head_lr,
    )


def test_head_lr_makes_a_separate_parameter_group():
    classifier = resnet_classifier(head_lr=0.01)
    optimizer = classifier.configure_optimizers()
    body, head = optimizer.param_groups
    assert (body["lr"], head["lr"]) == (1e-3, 0.01)
    assert {id(p) for p in head["params"]} == {id(p) for p in classifier.net.fc.parameters()}
    assert len(body["params"]) + len(head["params"]) == len(list(classifier.parameters()))
    # Without head_lr: one group holding everything.
    (group,) = resnet_classifier().configure_optimizers().param_groups
    assert len(group["params"]) == len(list(classifier.parameters()))


def test_one_cycle_peaks_keep_the_group_ratio():
    schedule = {"_target_": "torch.optim.lr_scheduler.OneCycleLR", "total_steps": 10}
    scheduler = {"interval": "step", "schedule": {**schedule, "max_lr": 2e-3, "pct_start": 0.2}}
    configured = resnet_classifier(head_lr=0.01, scheduler=scheduler).configure_optimizers()
    one_cycle = configured["lr_scheduler"]["scheduler"]
    assert [group["max_lr"] for group in configured["optimizer"].param_groups] == pytest.approx(
        [2e-3, 2e-2]
    )
    assert one_cycle.total_steps == 10 and configured["lr_scheduler"]["interval"] == "step"
    assert one_cycle._schedule_phases[0]["end_step"] == 0.2 * 10 - 1  # pct_start kept
    configured = resnet_classifier(scheduler=scheduler).configure_optimizers()
    assert [group["max_lr"] for group in configured["optimizer"].param_groups] == [2e-3]


def test_head_lr_needs_a_network_with_a_head(synthetic_root, tmp_path):
    cfg = tiny(synthetic_root, tmp_path, "model.head_lr=0.1")
    message = "model.head_lr is set, but .*VGGStyleCNN has no `head` to give it to; set it to null"
    with pytest.raises(ConfigValidationError, match=message):
        train(cfg)
    assert not any(tmp_path.iterdir())  # refused before any work


FIT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "data.batch_size=8",
    "data.eval_batch_size=16",
]


def test_frozen_backbone_trains_only_the_head(synthetic_root, tmp_path, torchvision_weights):
    path, source = torchvision_weights
    cfg = tiny(
        synthetic_root,
        tmp_path,
        *FIT,
        "model=resnet18",
        f"model.weights={path}",
        "model.net.freeze_backbone=true",
        "model.head_lr=0.05",
    )
    train(cfg)
    module = load_module(tmp_path / "checkpoints" / "last.ckpt")
    state = module.net.state_dict()
    for name, tensor in source.items():
        if not name.startswith(("fc.", "conv1.")):  # running statistics included
            assert torch.equal(state[name], tensor), name
    stem = adapt_stem_weight(source["conv1.weight"], torch.Size((64, 1, 3, 3)))
    assert torch.equal(state["conv1.weight"], stem)
    # Re-built from its checkpoint, the network is frozen again, BatchNorm included.
    frozen = [n for n, p in module.net.named_parameters() if not p.requires_grad]
    assert len(frozen) == len(list(module.net.parameters())) - 2
    module.train()
    assert all(not m.training for m in module.net.modules() if isinstance(m, nn.BatchNorm2d))


def test_frozen_backbone_gets_no_gradients():
    torch.manual_seed(0)
    classifier = resnet_classifier(freeze_backbone=True).train()
    loss = classifier(torch.randn(4, 1, 28, 28)).logsumexp(dim=1).mean()
    loss.backward()
    for name, parameter in classifier.net.named_parameters():
        assert (parameter.grad is None) != name.startswith("fc."), name
    (group,) = classifier.configure_optimizers().param_groups
    assert len(group["params"]) == 2  # fc.weight and fc.bias


@pytest.fixture(scope="module")
def small_cnn_checkpoint(synthetic_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("source_run")
    train(tiny(synthetic_root, run_dir, *FIT, *SMALL_CNN))
    return run_dir / "checkpoints" / "last.ckpt"


def test_init_from_starts_a_new_run_from_a_checkpoint(
    synthetic_root, tmp_path, small_cnn_checkpoint
):
    source = load_module(small_cnn_checkpoint).net.state_dict()
    cfg = tiny(
        synthetic_root,
        tmp_path,
        *FIT,
        *SMALL_CNN,
        f"model.init_from={small_cnn_checkpoint}",
        "optimizer.lr=1e-9",
    )
    # A learning rate of 1e-9 (0 is refused by the config check): the new run's weights stay
    # the checkpoint's to ~1e-8, while a fresh initialisation would differ by ~1e-2.
    train(cfg)
    copy = tmp_path / "source.ckpt"
    small_cnn_checkpoint.rename(copy)  # the fine-tuned checkpoint must not need its source
    try:
        finetuned = load_module(tmp_path / "checkpoints" / "last.ckpt")
    finally:
        copy.rename(small_cnn_checkpoint)
    # The run's config records where it started; the checkpoint's hyperparameters need not.
    assert OmegaConf.load(tmp_path / "config.yaml").model.init_from == str(small_cnn_checkpoint)
    assert "init_from" not in finetuned.hparams
    for name, tensor in finetuned.net.state_dict().items():
        assert torch.allclose(tensor, source[name], atol=1e-6), name


def test_init_from_refuses_another_architecture(small_cnn_checkpoint, tmp_path):
    network = resnet_classifier().net
    with pytest.raises(CheckpointError, match="does not match"):
        load_starting_weights(network, weights=None, init_from=small_cnn_checkpoint)
    with pytest.raises(ConfigValidationError, match="model.weights and model.init_from are both"):
        both = ["model.weights=b.pth", "model.init_from=a.ckpt", f"paths.run_dir={tmp_path}"]
        validate_config(compose("train", both))


def test_the_finetune_preset_needs_a_checkpoint(tmp_path):
    without = compose("train", [f"paths.run_dir={tmp_path}", "experiment=finetune"])
    with pytest.raises(ConfigValidationError, match="needs model.init_from=PATH"):
        validate_config(without)

    cfg = compose(
        "train",
        [f"paths.run_dir={tmp_path}", "experiment=finetune", "model.init_from=run/best.ckpt"],
    )
    validate_config(cfg)
    assert cfg.model.init_from == "run/best.ckpt"
    assert (cfg.optimizer.lr, cfg.trainer.max_epochs) == (5e-4, 5)


def test_optimizer_sgd_is_nesterov_momentum_at_its_own_rate(tmp_path):
    cfg = compose("train", [f"paths.run_dir={tmp_path}", "optimizer=sgd", "scheduler=none"])
    optimizer = build_module(cfg, CLASS_NAMES).configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    (group,) = optimizer.param_groups
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.05, 0.9, True)
    assert group["weight_decay"] == cfg.optimizer.weight_decay > 0
