import inspect
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.trainer.states import RunningStage
from omegaconf import OmegaConf

from fmnist_lightning.config.overrides import check_overrides
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.schema import ConfigValidationError, validate_config
from fmnist_lightning.data.augment import BatchAugment
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from helpers.compose import compose
from helpers.data import make_datamodule

PRESETS = Path(CONFIG_DIR) / "data" / "augment"


def images_batch(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def datamodule(root, augment) -> FashionMNISTDataModule:
    return make_datamodule(root, eval_batch_size=50, augment=augment)


def test_no_switch_on_leaves_images_as_they_are():
    images = images_batch()
    augment = BatchAugment()
    assert not augment.enabled
    assert torch.equal(augment(images), images)


def test_every_switch_keeps_shape_and_dtype_and_leaves_the_input_untouched():
    images = images_batch()
    before = images.clone()
    augment = BatchAugment(crop=True, crop_padding=3, flip=True, erase=True, erase_p=1.0)
    out = augment(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(images, before)
    assert not torch.equal(out, images)


def test_crop_is_a_shift_within_the_padding_filled_with_the_image_minimum():
    torch.manual_seed(0)
    padding = 2
    images = images_batch(32)
    out = BatchAugment(crop=True, crop_padding=padding)(images)
    for image, cropped in zip(images, out, strict=True):
        fill = image.min()
        padded = torch.full((1, 28 + 2 * padding, 28 + 2 * padding), float(fill))
        padded[:, padding:-padding, padding:-padding] = image
        windows = [
            padded[:, top : top + 28, left : left + 28]
            for top in range(2 * padding + 1)
            for left in range(2 * padding + 1)
        ]
        assert any(torch.equal(cropped, window) for window in windows)
    # Different images get different offsets: not every one is the centred window.
    assert sum(torch.equal(a, b) for a, b in zip(images, out, strict=True)) < 32


def test_flip_mirrors_with_its_probability():
    images = images_batch(200)
    assert torch.equal(BatchAugment(flip=True, flip_p=1.0)(images), images.flip(-1))
    assert torch.equal(BatchAugment(flip=True, flip_p=0.0)(images), images)
    torch.manual_seed(1)
    out = BatchAugment(flip=True, flip_p=0.5)(images)
    flipped = sum(torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True))
    assert 70 < flipped < 130
    # Each image is either itself or its mirror image.
    assert all(
        torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)
    )


def test_erasing_fills_one_rectangle_of_the_requested_size_with_the_value():
    torch.manual_seed(2)
    images = images_batch(100) + 10.0  # no pixel is 0 before erasing
    erase = dict(erase=True, erase_scale=(0.1, 0.2), erase_ratio=(0.5, 2.0), erase_value=0.0)
    out = BatchAugment(**erase, erase_p=1.0)(images)
    erased = out == 0.0
    assert torch.equal(out[~erased], images[~erased])
    for mask in erased[:, 0]:
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert mask.sum() == height * width  # a filled rectangle
        assert 0.1 * 784 * 0.7 <= mask.sum() <= 0.2 * 784 * 1.3  # area, up to rounding
    none = BatchAugment(**erase, erase_p=0.0)(images)
    assert torch.equal(none, images)


@pytest.mark.parametrize("switch", ["crop", "flip", "erase"])
def test_each_switch_works_alone(switch):
    torch.manual_seed(3)
    images = images_batch()
    out = BatchAugment(**{switch: True, "flip_p": 1.0, "erase_p": 1.0})(images)
    changed = (out != images).flatten(1).any(dim=1)
    assert changed.float().mean() > 0.5
    if switch == "flip":
        assert torch.equal(out, images.flip(-1))
    if switch == "erase":  # only erasing writes the fill value 0 exactly
        assert ((out == 0) & (images != 0)).any()


def test_invalid_strengths_are_refused_with_the_key_name():
    # flip_p, erase_p and crop_padding: refused by the config schema (test_config_schema)
    with pytest.raises(ValueError, match="erase_scale"):
        BatchAugment(erase=True, erase_scale=[0.5, 0.1])


def compose_augment(tmp_path, *overrides: str):
    return compose("train", [f"paths.run_dir={tmp_path}", *overrides]).data.augment


def test_config_dicts_and_presets_build_the_augmentation(tmp_path):
    def built(*overrides: str) -> BatchAugment:
        """The data module's augmentation, built by Hydra from the composed config."""
        return instantiate(compose("train", [f"paths.run_dir={tmp_path}", *overrides]).data).augment

    augment = built("data/augment=standard")
    assert (augment.crop, augment.flip, augment.erase) == (True, True, True)
    assert augment.crop_padding == 2 and augment.erase_scale == (0.02, 0.33)

    default = built()
    assert (default.crop, default.flip, default.erase) == (False, True, False)
    assert not built("data/augment=none").enabled
    assert datamodule(tmp_path, None).augment is None

    single = built("data/augment=none", "data.augment.flip=true")
    assert (single.crop, single.flip, single.erase) == (False, True, False)


def test_python_defaults_equal_none_yaml_and_the_presets_inherit_from_it(tmp_path):
    none = OmegaConf.to_container(OmegaConf.load(PRESETS / "none.yaml"))
    none.pop("_target_")
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(BatchAugment).parameters.items()
    }
    assert set(defaults) == set(none)
    for name, value in none.items():
        default = defaults[name]
        assert (list(default) if isinstance(default, tuple) else default) == value, name
    for preset in sorted(PRESETS.glob("*.yaml")):
        composed = OmegaConf.to_container(compose_augment(tmp_path, f"data/augment={preset.stem}"))
        assert set(composed) == {"_target_", *none}, preset.name  # every key, from none.yaml
        if preset.stem != "none":
            own = OmegaConf.to_container(OmegaConf.load(preset))
            assert own.pop("defaults") == ["none", "_self_"], preset.name
            assert all(none[key] != value for key, value in own.items()), preset.name


def test_the_dotted_form_is_answered_with_the_group_syntax(tmp_path):
    hint = "to pick the preset write data/augment=standard"
    with pytest.raises(ConfigValidationError, match=hint):
        check_overrides(["data.augment=standard"])  # the command line, before Hydra runs
    cfg = compose("train", [f"paths.run_dir={tmp_path}", "data.augment=standard"])
    with pytest.raises(ConfigValidationError, match=hint) as error:
        validate_config(cfg)  # configs composed in Python
    assert "\n" not in str(error.value)
    check_overrides(["data/augment=standard", "data.augment.flip=true", "data.augment=null"])


def test_the_hook_augments_training_batches_only(synthetic_root):
    data = datamodule(synthetic_root, BatchAugment(flip=True, flip_p=1.0))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    data.trainer = trainer
    images, labels = images_batch(8), torch.arange(8)
    for stage in (RunningStage.VALIDATING, RunningStage.TESTING, RunningStage.PREDICTING):
        trainer.state.stage = stage
        out_images, out_labels = data.on_after_batch_transfer((images, labels), 0)
        assert torch.equal(out_images, images) and torch.equal(out_labels, labels)
    trainer.state.stage = RunningStage.TRAINING
    out_images, out_labels = data.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(out_images, images.flip(-1)) and torch.equal(out_labels, labels)


def test_the_model_summarys_example_image_passes_unaugmented_and_draws_no_random_numbers(
    synthetic_root,
):
    """Lightning's summary sends the module's example image through the hook alone, during
    training: it must come back as it was, and leave the run's random stream where it was."""
    data = datamodule(synthetic_root, BatchAugment(flip=True, flip_p=0.5, crop=True))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    data.trainer = trainer
    trainer.state.stage = RunningStage.TRAINING
    example = images_batch(1)
    state = torch.get_rng_state()
    assert data.on_after_batch_transfer(example, 0) is example
    assert torch.equal(torch.get_rng_state(), state)


class BatchRecorder(L.LightningModule):
    """A tiny classifier that keeps every batch it is given, per split."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(28 * 28, 10)
        self.seen: dict[str, list] = {"train": [], "val": [], "test": []}

    def step(self, batch, split):
        self.seen[split].append((batch[0].clone(), batch[1].clone()))
        return torch.nn.functional.cross_entropy(self.layer(batch[0].flatten(1)), batch[1])

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self.step(batch, "val")

    def test_step(self, batch, batch_idx):
        self.step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_fit_augments_training_batches_and_never_validation_or_test(synthetic_root):
    data = datamodule(synthetic_root, BatchAugment(flip=True, flip_p=1.0))
    recorder = BatchRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    trainer.fit(recorder, datamodule=data)
    trainer.test(recorder, datamodule=data, verbose=False)

    def rows(images: torch.Tensor) -> set[bytes]:
        return {image.numpy().tobytes() for image in images}

    plain = {split: rows(data.tensors[split].tensors[0]) for split in ("train", "val", "test")}
    train_images = torch.cat([images for images, _ in recorder.seen["train"]])
    train_labels = torch.cat([labels for _, labels in recorder.seen["train"]])
    assert train_images.shape == (320, 1, 28, 28)
    # Every training image is the mirror image of a training image, with its label kept.
    assert rows(train_images.flip(-1)) == plain["train"]
    assert not rows(train_images) & plain["train"]
    assert sorted(train_labels.tolist()) == sorted(data.tensors["train"].tensors[1].tolist())
    for split in ("val", "test"):
        seen = torch.cat([images for images, _ in recorder.seen[split]])
        assert rows(seen) <= plain[split] and len(rows(seen)) > 0
