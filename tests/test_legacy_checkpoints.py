"""Files written by release 0.1.0 (tests/fixtures/legacy-0.1.0, see its README) still load
everywhere and predict exactly what that release predicted."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import FashionMNIST

from fmnist_lightning import load_classifier
from fmnist_lightning.analysis.metrics import analyse
from fmnist_lightning.data.normalise import normalise
from fmnist_lightning.evaluate import evaluate_checkpoint
from fmnist_lightning.export import export, load_exported
from fmnist_lightning.models import registry
from fmnist_lightning.models.checkpoint_file import upgrade_hparams
from fmnist_lightning.models.module import FashionMNISTClassifier, FashionMNISTModule
from fmnist_lightning.models.resnet import ResNet18
from fmnist_lightning.models.vgg import VGGStyleCNN
from fmnist_lightning.predict import main as predict_main
from helpers.compose import compose
from helpers.data import write_fashion_mnist

FIXTURES = Path(__file__).parent / "fixtures" / "legacy-0.1.0"
CHECKPOINT = FIXTURES / "vgg_small.ckpt"
ATOL = 1e-6
ONNX_MISSING = [
    m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None
]


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    """pixels (80, 28, 28) uint8, labels of the first 64, and the release's probabilities."""
    with np.load(FIXTURES / "vgg_small_expected.npz") as arrays:
        return {name: torch.from_numpy(arrays[name]) for name in arrays.files}


def test_the_fixture_is_a_file_of_release_0_1_0():
    stored = torch.load(CHECKPOINT, weights_only=True)["hyper_parameters"]
    assert stored["model"]["_target_"] == "fmnist_lightning.network.VGGStyleCNN"
    assert "net" not in stored and stored["scheduler"]["interval"] == "step"


def test_its_hyperparameters_are_upgraded_to_the_current_layout():
    stored = torch.load(CHECKPOINT, weights_only=True)["hyper_parameters"]
    upgraded = upgrade_hparams(stored)
    assert upgraded["net"]["_target_"] == registry.VGG
    assert upgraded["net"]["blocks"] == [[8], [16, 16], [32, 32]]
    assert not {"channels_last", "compile", "init_from", "weights"} & set(upgraded["net"])
    assert (upgraded["channels_last"], upgraded["compile"]) == (True, False)
    schedule = dict(stored["scheduler"])
    del schedule["interval"]
    assert upgraded["scheduler"] == {"interval": "step", "schedule": schedule}
    assert upgrade_hparams({**stored, "scheduler": None})["scheduler"] == {
        "interval": "epoch",
        "schedule": None,
    }
    assert upgrade_hparams(upgraded) == upgraded  # the current layout stays as it is


def test_load_classifier_predicts_what_the_release_predicted(expected):
    result = load_classifier(CHECKPOINT).predict(expected["pixels"])
    assert torch.allclose(result.probabilities, expected["probabilities"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("cls", [FashionMNISTModule, FashionMNISTClassifier])
def test_lightnings_load_from_checkpoint_predicts_what_the_release_predicted(cls, expected):
    module = cls.load_from_checkpoint(CHECKPOINT, map_location="cpu").eval()
    assert isinstance(module.net, VGGStyleCNN) and module.hparams.channels_last
    inputs = normalise(expected["pixels"], module.hparams.mean, module.hparams.std)
    with torch.no_grad():
        probabilities = module.predict_step(inputs, 0)
    assert torch.allclose(probabilities, expected["probabilities"], atol=ATOL, rtol=0)


def test_evaluate_gives_the_metrics_of_the_releases_probabilities(expected, tmp_path):
    # The release's first 64 images are the synthetic test split of 64 images.
    root = write_fashion_mnist(tmp_path / "data", train=400, test=64)
    test_images = FashionMNIST(str(root), train=False).data
    assert torch.equal(test_images, expected["pixels"][:64])
    cfg = compose(
        "evaluate",
        [
            f"ckpt_path={CHECKPOINT}",
            f"data.root={root}",
            "data.download=false",
            "accelerator=cpu",
            "precision=32-true",
            f"output_dir={tmp_path / 'analysis'}",
        ],
    )
    metrics, output_dir = evaluate_checkpoint(cfg)
    labels = expected["labels"].long()
    reference = analyse(expected["probabilities"][:64], labels, list(FashionMNIST.classes), 15)
    assert metrics["images"] == 64
    for key in ("accuracy", "loss", "ece", "macro_f1", "weighted_f1"):
        assert metrics[key] == pytest.approx(reference.metrics[key], abs=ATOL), key
    assert (output_dir / "report.md").is_file()


def test_predict_writes_the_releases_probabilities(expected, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(expected["pixels"].numpy()):
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    output = tmp_path / "rows.json"
    argv = [str(CHECKPOINT), str(folder), "--invert", "never", "-o", str(output)]
    assert predict_main(argv) == 0
    rows = json.loads(output.read_text())
    written = torch.tensor([list(row["probabilities"].values()) for row in rows])
    assert torch.allclose(written, expected["probabilities"], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param(
            "onnx",
            marks=pytest.mark.skipif(bool(ONNX_MISSING), reason="optional extra 'export' missing"),
        ),
        "torchscript",
    ],
)
def test_export_predicts_what_the_release_predicted(fmt, expected, tmp_path):
    path = tmp_path / f"model.{fmt}"
    export(CHECKPOINT, fmt, path, data_root=str(tmp_path / "no-data"), check_count=8)
    probabilities = load_exported(path, fmt)(expected["pixels"].unsqueeze(1).numpy())
    np.testing.assert_allclose(probabilities, expected["probabilities"].numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("name", "network", "parameters"),
    [("resnet18", ResNet18, 11_172_810), ("cnn_bn", VGGStyleCNN, 1_414_666)],
)
def test_release_hyperparameters_build_the_current_networks(name, network, parameters, tmp_path):
    stored = json.loads((FIXTURES / f"{name}_hparams.json").read_text())
    module = FashionMNISTModule(**upgrade_hparams(stored)).eval()
    assert type(module.net) is network
    assert sum(p.numel() for p in module.net.parameters()) == parameters
    # With fresh weights, as release 0.1.0 would have saved them: the file loads and predicts.
    path = tmp_path / f"{name}.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": stored}, path)
    pixels = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    loaded = load_classifier(path)
    assert type(loaded.module.net) is network
    inputs = normalise(pixels, stored["mean"], stored["std"])
    with torch.no_grad():
        reference = module.predict_step(inputs, 0)
    assert torch.allclose(loaded.predict(pixels).probabilities, reference, atol=ATOL, rtol=0)
