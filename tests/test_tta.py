"""Test-time augmentation (conf/tta/, models/tta.py): the views, the metrics a run logs beside
the plain ones, and the same option in evaluate and Classifier.predict."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torchvision.datasets import FashionMNIST

from fmnist_lightning import load_classifier
from fmnist_lightning.config.schema import ConfigValidationError, validate_config
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.data.normalise import normalise
from fmnist_lightning.evaluate import evaluate_checkpoint
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.models.checkpoint_file import read_checkpoint
from fmnist_lightning.models.module import FashionMNISTModule, load_module
from fmnist_lightning.models.tta import TTA, TTAError, shift_images, views
from fmnist_lightning.train import train
from helpers.compose import compose, finalise, tiny

LEGACY = Path(__file__).parent / "fixtures" / "legacy-0.1.0" / "vgg_small.ckpt"
MEAN, STD = 0.2860, 0.3530
FILL = -MEAN / STD
# A small compact network learns the synthetic classes in a few epochs.
LEARNS = [
    "model=compact",
    "model.net.stem_width=8",
    "model.net.widths=[16,32,64]",
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "~analysis",
]


def images(count: int = 3) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(count, 1, 28, 28)


# --- the views ---------------------------------------------------------------------------


def test_flip_is_torch_flip_on_the_width_axis():
    batch = images()
    mirror = views(batch, TTA(flip=True), FILL)[1]
    assert torch.equal(mirror, torch.flip(batch, dims=[3]))
    assert torch.equal(mirror[..., 0], batch[..., 27])


@pytest.mark.parametrize("dx, dy", [(1, 0), (-1, 0), (0, 2), (0, -2), (3, -1)])
def test_a_shift_moves_the_content_and_fills_with_the_background(dx, dy):
    batch = images()
    shifted = shift_images(batch, dx, dy, FILL)
    assert shifted.shape == batch.shape
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    moved_in = (rows - dy < 0) | (rows - dy >= 28) | (cols - dx < 0) | (cols - dx >= 28)
    assert torch.all(shifted[..., moved_in] == FILL)
    inside = ~moved_in
    source = batch[..., (rows - dy).clamp(0, 27), (cols - dx).clamp(0, 27)]
    assert torch.equal(shifted[..., inside], source[..., inside])
    # A pixel at (10, 10) lands at (10 + dy, 10 + dx).
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 10, 10] = 5.0
    assert shift_images(dot, dx, dy, 0.0)[0, 0, 10 + dy, 10 + dx] == 5.0


def test_the_fill_is_a_black_pixel_after_normalisation():
    black = normalise(torch.zeros(1, 28, 28, dtype=torch.uint8), MEAN, STD)
    module = load_classifier(LEGACY).module
    assert module.background == pytest.approx(float(black.flatten()[0]))


def test_the_views_of_each_setting():
    batch = images()
    assert len(views(batch, TTA(), FILL)) == 1 and not TTA().enabled
    flipped = views(batch, TTA(flip=True), FILL)
    assert len(flipped) == 2 and torch.equal(flipped[0], batch)
    assert torch.equal(flipped[1], torch.flip(batch, dims=[3]))
    every = views(batch, TTA(flip=True, shift=1), FILL)
    assert len(every) == TTA(flip=True, shift=1).view_count == 10
    expected = [
        shift_images(base, dx, dy, FILL)
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
        for base in (batch, torch.flip(batch, dims=[3]))
    ]
    for view, wanted in zip(every[2:], expected, strict=True):
        assert torch.equal(view, wanted)
    assert len(views(batch, TTA(shift=2), FILL)) == 5


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"flip": "yes", "shift": 0}, "tta.flip='yes' must be true or false"),
        ({"flip": True, "shift": -1}, "tta.shift=-1 is out of range: it must be >= 0"),
        ({"flip": True, "shift": 1.5}, "tta.shift=1.5 must be an integer >= 0"),
        ({"flip": True, "shfit": 1}, "tta.shfit is not a setting of tta: it takes flip and shift"),
        (["flip"], r"tta=\['flip'\] must be null or a mapping of flip and shift"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(TTAError, match=message):
        TTA.of(settings)


def test_a_bad_tta_in_the_training_config_is_refused_before_any_work(tmp_path):
    cfg = compose("train", [f"paths.run_dir={tmp_path}", "tta=flip", "tta.shift=-1"])
    with pytest.raises(ConfigValidationError, match="tta.shift=-1 is out of range: it must be"):
        validate_config(finalise(cfg))


def test_the_presets():
    presets = {"none": (False, 0), "flip": (True, 0), "flip_shift": (True, 1)}
    for name, (flip, shift) in presets.items():
        cfg = compose("train", ["paths.run_dir=/tmp/unused", f"tta={name}"])
        assert (cfg.tta.flip, cfg.tta.shift) == (flip, shift)
    assert compose("evaluate", ["ckpt_path=x.ckpt"]).tta == {"flip": False, "shift": 0}


# --- runs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(synthetic_root, tmp_path_factory):
    """The same fit without the tta key (as before TTA existed), with tta=none and tta=flip_shift."""
    found = {}
    for name, extra in (("absent", "~tta"), ("none", "tta=none"), ("flip_shift", "tta=flip_shift")):
        run_dir = tmp_path_factory.mktemp(name)
        cfg = tiny(synthetic_root, run_dir, *LEARNS, extra)
        found[name] = (run_dir, train(cfg), cfg)
    return found


def metrics_csv(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=["elapsed_seconds"])


def test_tta_none_leaves_every_metric_and_weight_as_before(runs):
    (absent, before, _), (none, after, _) = runs["absent"], runs["none"]
    pd.testing.assert_frame_equal(metrics_csv(none), metrics_csv(absent))
    for key in ("test_acc", "test_loss", "best_val_acc", "best_checkpoint"):
        assert after[key] == before[key], key
    assert not any(key.endswith("_tta") for key in after)
    old, new = (read_checkpoint(r / "checkpoints" / "last.ckpt") for r in (absent, none))
    assert old["state_dict"].keys() == new["state_dict"].keys()
    for key, value in old["state_dict"].items():
        assert torch.equal(new["state_dict"][key], value), key
    assert old["hyper_parameters"]["tta"] is None
    assert new["hyper_parameters"]["tta"] == {"flip": False, "shift": 0}


def test_tta_adds_its_metrics_beside_the_unchanged_plain_ones(runs):
    (none, plain, _), (tta, summary, _) = runs["none"], runs["flip_shift"]
    with_tta = metrics_csv(tta)
    pd.testing.assert_frame_equal(with_tta[metrics_csv(none).columns], metrics_csv(none))
    validation = with_tta.dropna(subset=["val_acc"])
    assert validation["val_acc_tta"].notna().all() and len(validation) == 3
    assert with_tta["test_acc_tta"].notna().sum() == 1
    written = json.loads((tta / "test_metrics.json").read_text())
    assert written == summary
    assert summary["test_acc"] == plain["test_acc"]
    assert 0.0 <= summary["test_acc_tta"] <= 1.0
    # Checkpoints are still chosen on the plain val_acc.
    assert summary["best_checkpoint"] == plain["best_checkpoint"]


def test_the_logged_tta_accuracy_is_the_mean_softmax_over_the_views(runs):
    run_dir, summary, cfg = runs["flip_shift"]
    module = load_module(run_dir / summary["best_checkpoint"])
    assert module.tta == TTA(flip=True, shift=1)
    datamodule = FashionMNISTDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    datamodule.setup("test")
    inputs, labels = datamodule.tensors["test"].tensors
    probabilities = predict_probabilities(module, inputs, tta=module.tta)
    accuracy = (probabilities.argmax(dim=1) == labels).float().mean().item()
    assert accuracy == pytest.approx(summary["test_acc_tta"], abs=1e-6)
    plain = predict_probabilities(module, inputs).argmax(dim=1)
    assert (plain == labels).float().mean().item() == pytest.approx(summary["test_acc"], abs=1e-6)


def test_classifier_predict_takes_tta_and_is_unchanged_without_it(runs):
    run_dir, summary, cfg = runs["flip_shift"]
    classifier = load_classifier(run_dir / summary["best_checkpoint"])
    pixels = FashionMNIST(cfg.data.root, train=False).data
    default = classifier.predict(pixels)
    assert torch.equal(classifier.predict(pixels, tta={"flip": False, "shift": 0}).probabilities,
                       default.probabilities)  # fmt: skip
    inputs = normalise(pixels, MEAN, STD)
    assert torch.equal(default.probabilities, predict_probabilities(classifier.module, inputs))
    with_tta = classifier.predict(pixels, tta=TTA(flip=True, shift=1))
    expected = predict_probabilities(classifier.module, inputs, tta=TTA(flip=True, shift=1))
    torch.testing.assert_close(with_tta.probabilities, expected, rtol=0, atol=1e-6)
    assert not torch.equal(with_tta.probabilities, default.probabilities)
    assert torch.allclose(with_tta.probabilities.sum(dim=1), torch.ones(len(pixels)), atol=1e-5)


def test_evaluate_with_tta_writes_its_own_folder_with_the_tta_accuracy(runs, synthetic_root):
    run_dir, summary, _ = runs["flip_shift"]
    common = [
        f"ckpt_path={run_dir / summary['best_checkpoint']}",
        f"data.root={synthetic_root}",
        "data.download=false",
        "accelerator=cpu",
        "precision=32-true",
        "analysis.samples_per_class=1",
        "analysis.predictions=1",
        "analysis.mistakes=1",
    ]
    plain, plain_dir = evaluate_checkpoint(compose("evaluate", common))
    tta, tta_dir = evaluate_checkpoint(compose("evaluate", [*common, "tta=flip_shift"]))
    assert plain["tta"] is None and plain_dir.name.endswith("-test")
    assert tta["tta"] == {"flip": True, "shift": 1} and tta_dir.name.endswith("-test-tta")
    assert plain["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-6)
    assert tta["accuracy"] == pytest.approx(summary["test_acc_tta"], abs=1e-6)
    assert "test-time augmentation" in (tta_dir / "report.md").read_text()
    assert json.loads((tta_dir / "metrics.json").read_text())["tta"] == {"flip": True, "shift": 1}


def test_checkpoints_of_release_0_1_0_load_with_tta_off():
    module = FashionMNISTModule.load_from_checkpoint(LEGACY, map_location="cpu")
    assert "tta" not in read_checkpoint(LEGACY)["hyper_parameters"]
    assert module.tta == TTA() and not hasattr(module, "val_acc_tta")
    classifier = load_classifier(LEGACY)
    result = classifier.predict(torch.zeros(2, 28, 28, dtype=torch.uint8), tta={"flip": True})
    assert result.probabilities.shape == (2, 10)
