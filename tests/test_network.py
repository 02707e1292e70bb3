import pytest
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary
from omegaconf import OmegaConf

from fmnist_lightning.benchmarking.flops import training_flops
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.models.module import build_network
from fmnist_lightning.models.vgg import VGGStyleCNN
from fmnist_lightning.training.builders import build_module
from helpers.compose import compose
from helpers.modules import tiny_module


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_seed_network_has_the_keras_parameter_count():
    assert count_parameters(VGGStyleCNN()) == 1_413_834


def test_config_builds_the_seed_network(tmp_path):
    cfg = compose("train", [f"paths.run_dir={tmp_path}"])
    network = build_network(OmegaConf.to_container(cfg.model.net), num_classes=10)
    assert count_parameters(network) == 1_413_834


@pytest.mark.parametrize("batch", [1, 7])
def test_output_is_one_logit_per_class(batch):
    logits = VGGStyleCNN()(torch.randn(batch, 1, 28, 28))
    assert logits.shape == (batch, 10)


def test_layer_stack_matches_the_seed_architecture():
    network = VGGStyleCNN()
    convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 64, (7, 7)),
        (64, 128, (3, 3)),
        (128, 128, (3, 3)),
        (128, 256, (3, 3)),
        (256, 256, (3, 3)),
    ]
    assert all(c.padding == "same" for c in convs)
    linears = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2304, 128), (128, 64), (64, 10)]
    dropouts = [m.p for m in network.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.5, 0.5]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in network.modules()) == 3


def test_widths_and_dropout_are_configurable():
    network = VGGStyleCNN(blocks=[[8], [16]], dense=[32], dropout=0.3, first_kernel_size=5)
    convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16]
    assert convs[0].kernel_size == (5, 5)
    assert [m.p for m in network.modules() if isinstance(m, torch.nn.Dropout)] == [0.3]
    # 28 → 14 → 7 after two pools: the first dense layer sees 16 * 7 * 7 features.
    assert network.classifier[1].in_features == 16 * 7 * 7
    assert network(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_the_model_summary_counts_the_networks_flops(tmp_path):
    """The module carries an example image, so Lightning's summary prints real FLOPs (it
    printed 0 without one): those of one forward pass, as torch's FLOP counter counts them."""
    cfg = compose("train", [f"paths.run_dir={tmp_path}"])
    module = build_module(cfg, CLASS_NAMES)
    summary = ModelSummary(module, max_depth=1)
    forward = training_flops(module.net, (1, 28, 28))["forward_flops_per_image"]
    assert summary.total_flops == forward > 10**8
    assert summary.in_sizes[0] == [1, 1, 28, 28] and summary.out_sizes[0] == [1, 10]


def test_a_compiled_network_carries_no_example_image():
    """The summary's batch of one would make torch.compile compile the network twice."""
    assert tiny_module().example_input_array.shape == (1, 1, 28, 28)
    assert tiny_module(compile=True).example_input_array is None
