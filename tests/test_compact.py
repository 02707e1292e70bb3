"""model=compact: the airbench-style CompactCNN (models/compact.py), its config and a short fit."""

import pytest
import torch
from omegaconf import OmegaConf

from fmnist_lightning.config.schema import validate_config
from fmnist_lightning.models import registry
from fmnist_lightning.models.compact import CompactCNN
from fmnist_lightning.models.module import build_network
from fmnist_lightning.train import train
from helpers.compose import compose, finalise, tiny

DEFAULT = {
    "stem_width": 24,
    "widths": [64, 128, 256],
    "residual": False,
    "pool": "max",
    "activation": "gelu",
}


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_parameters(in_channels: int, stem: int, widths: list[int], classes: int) -> int:
    """By hand: bias-free 3x3 convolutions, BatchNorm's weight and bias, a bias-free head."""

    def conv(cin: int, cout: int) -> int:
        return cin * cout * 3 * 3

    def norm(channels: int) -> int:
        return 2 * channels

    total = conv(in_channels, stem) + norm(stem)
    channels = stem
    for width in widths:
        total += conv(channels, width) + norm(width) + conv(width, width) + norm(width)
        channels = width
    return total + channels * classes


def test_the_default_network_has_the_parameters_its_layers_add_up_to():
    assert expected_parameters(1, 24, [64, 128, 256], 10) == 1_161_224
    assert count_parameters(CompactCNN()) == 1_161_224


def test_the_model_config_builds_the_default_network(tmp_path):
    cfg = compose("train", [f"paths.run_dir={tmp_path}", "model=compact"])
    net = OmegaConf.to_container(cfg.model.net)
    assert {key: net[key] for key in DEFAULT} == DEFAULT
    assert (net["dropout"], net["logit_scale"]) == (0.0, 0.125)
    assert count_parameters(build_network(net, num_classes=10)) == 1_161_224
    for key in ("channels_last", "compile", "weights", "init_from", "head_lr"):
        assert key in cfg.model, key
    validate_config(finalise(cfg))


def test_the_registry_allows_it():
    assert registry.COMPACT == "fmnist_lightning.models.compact.CompactCNN"
    assert registry.COMPACT in registry.NETWORKS


@pytest.mark.parametrize("batch", [1, 7])
def test_output_is_one_logit_per_class(batch):
    network = CompactCNN().eval()
    assert network(torch.randn(batch, 1, 28, 28)).shape == (batch, 10)


def test_it_runs_channels_last_with_the_same_logits():
    torch.manual_seed(0)
    network = CompactCNN(stem_width=8, widths=[16, 32]).eval()
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = network(images)
        network = network.to(memory_format=torch.channels_last)
        assert network.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        logits = network(images.contiguous(memory_format=torch.channels_last))
    assert logits.shape == (4, 10)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def test_the_layers_are_those_described():
    network = CompactCNN(stem_width=8, widths=[16, 32], residual=True, pool="avg", dropout=0.2)
    convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 8), (8, 16), (16, 16), (16, 32), (32, 32)]  # fmt: skip
    assert all(c.bias is None and c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in network.modules()) == 2
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules()) == 5
    assert sum(isinstance(m, torch.nn.GELU) for m in network.modules()) == 5
    assert isinstance(network.pool, torch.nn.AdaptiveAvgPool2d) and network.dropout.p == 0.2
    assert network.head.bias is None and network.head.in_features == 32


def test_relu_replaces_every_gelu_and_keeps_the_parameters():
    gelu = CompactCNN(stem_width=8, widths=[16, 32])
    relu = CompactCNN(stem_width=8, widths=[16, 32], activation="relu")
    assert sum(isinstance(m, torch.nn.ReLU) for m in relu.modules()) == 5
    assert not any(isinstance(m, torch.nn.GELU) for m in relu.modules())
    assert count_parameters(relu) == count_parameters(gelu)
    relu.load_state_dict(gelu.state_dict())  # the same tensors: only the nonlinearity differs
    images = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert relu.eval()(images).shape == (3, 10)
        assert not torch.allclose(relu(images), gelu.eval()(images))


def test_logit_scale_scales_the_logits_and_residual_adds_the_pooled_activation():
    torch.manual_seed(0)
    images = torch.randn(2, 1, 28, 28)
    one = CompactCNN(stem_width=8, widths=[16], logit_scale=1.0).eval()
    eighth = CompactCNN(stem_width=8, widths=[16], logit_scale=0.125).eval()
    eighth.load_state_dict(one.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(eighth(images), one(images) * 0.125)
        group = CompactCNN(stem_width=8, widths=[16], residual=True).eval().groups[0]
        x = torch.randn(2, 8, 28, 28)
        pooled = group.first(x)
        torch.testing.assert_close(group(x), group.second(pooled) + pooled)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="pool must be one of max, avg"):
        CompactCNN(pool="mean")
    with pytest.raises(ValueError, match="at least one group width"):
        CompactCNN(widths=[])
    with pytest.raises(ValueError, match="activation must be one of gelu, relu, got 'tanh'"):
        CompactCNN(activation="tanh")


def test_a_short_fit_learns(synthetic_root, tmp_path):
    summary = train(
        tiny(
            synthetic_root,
            tmp_path,
            "model=compact",
            "model.net.stem_width=8",
            "model.net.widths=[16,32,64]",
            "trainer.max_epochs=4",
            "~analysis",
        )
    )
    assert summary["test_acc"] > 0.5  # chance is 0.1
    assert summary["parameters"] == expected_parameters(1, 8, [16, 32, 64], 10)
