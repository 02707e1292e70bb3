"""experiment=seed_keras sets every training choice back to the original; best; finetune."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fmnist_lightning.config.paths import CONFIG_DIR as CONFIG_PATH
from fmnist_lightning.config.schema import validate_config
from helpers.compose import compose, finalise

CONFIG_DIR = Path(CONFIG_PATH)


def test_seed_keras_sets_the_original_value_of_every_training_choice(tmp_path):
    default = compose("train", [f"paths.run_dir={tmp_path}"])
    keras = compose("train", [f"paths.run_dir={tmp_path}", "experiment=seed_keras"])
    assert keras.optimizer == {"_target_": "torch.optim.Adam", "lr": 1e-3, "eps": 1e-7}
    assert keras.scheduler == {"interval": "epoch", "schedule": None}  # a constant rate
    assert keras.label_smoothing == 0.0
    assert not keras.tta.flip and keras.tta.shift == 0  # the original evaluated plain images
    assert keras.data.batch_size == 32
    assert keras.trainer.max_epochs == 10
    net = keras.model.net
    assert net._target_ == "fmnist_lightning.models.vgg.VGGStyleCNN"
    assert (net.batch_norm, net.dense_batch_norm) == (False, False)
    assert (net.dropout, net.weight_init) == (0.5, "keras")
    augment = keras.data.augment
    assert not (augment.crop or augment.flip or augment.erase)
    stopping = keras.callbacks.early_stopping
    assert (stopping.monitor, stopping.mode, stopping.patience) == ("train_acc", "max", 3)
    # The project's default differs in exactly these training choices, on the same network.
    assert default.optimizer._target_ == "torch.optim.AdamW" and default.optimizer.weight_decay > 0
    assert default.scheduler.schedule._target_.endswith("OneCycleLR")
    assert default.scheduler.interval == "step"
    assert default.label_smoothing > 0 and default.callbacks.early_stopping.monitor == "val_loss"
    assert default.tta.flip  # the image and its mirror: val_acc_tta and test_acc_tta too
    assert default.model.net.weight_init == "pytorch"
    assert (default.data.augment.flip, default.data.augment.crop) == (True, False)
    different = {
        key
        for key in default.model.net
        if OmegaConf.select(default.model.net, key) != OmegaConf.select(keras.model.net, key)
    }
    assert different == {"weight_init"}
    assert OmegaConf.to_container(keras.model) == {
        **OmegaConf.to_container(default.model),
        "net": OmegaConf.to_container(keras.model.net),
    }  # and the same run-time settings


def test_best_is_the_compact_network_with_crop_flip_and_tta(tmp_path):
    best = compose("train", [f"paths.run_dir={tmp_path}", "experiment=best"])
    assert best.model.net._target_ == "fmnist_lightning.models.compact.CompactCNN"
    augment = best.data.augment
    assert (augment.crop, augment.flip, augment.erase) == (True, True, False)
    assert best.trainer.max_epochs <= 30
    assert best.callbacks.early_stopping is None
    # EMA was worse on validation: the preset averages no weights.
    assert best.callbacks.get("weight_averaging") is None
    assert best.tta.flip is True
    # Chosen on validation accuracy, never on the test set.
    assert best.callbacks.model_checkpoint.monitor == "val_acc"
    validate_config(finalise(best))


@pytest.mark.parametrize("name", ["speedrun", "speedrun_fp32"])
def test_speedrun_is_a_small_compact_network_on_a_short_schedule(tmp_path, name):
    speedrun = compose("train", [f"paths.run_dir={tmp_path}", f"experiment={name}"])
    assert speedrun.model.net._target_ == "fmnist_lightning.models.compact.CompactCNN"
    assert speedrun.trainer.max_epochs <= 10
    # It validates less often than every epoch, and still after its last one (Lightning adds
    # no validation after the last epoch): the checkpoint tested is the end of the schedule.
    every = speedrun.trainer.check_val_every_n_epoch
    assert every > 1 and speedrun.trainer.max_epochs % every == 0
    assert speedrun.callbacks.early_stopping is None
    assert "time_to_accuracy" in speedrun.callbacks  # it prints its time to 93%
    validate_config(finalise(speedrun))


@pytest.mark.parametrize("name", ["best", "speedrun", "speedrun_fp32"])
def test_every_value_of_the_preset_says_why(name):
    """Each key the preset sets carries a comment on its line (defaults list included)."""
    lines = (CONFIG_DIR / "experiment" / f"{name}.yaml").read_text().splitlines()
    values = [
        line
        for line in lines
        if line.strip() and not line.lstrip().startswith("#") and not line.rstrip().endswith(":")
        and line.strip() != "defaults:"
    ]  # fmt: skip
    assert values and all("#" in line for line in values), [v for v in values if "#" not in v]


def test_resnet18_experiment(tmp_path):
    cfg = compose(
        "train",
        [f"paths.run_dir={tmp_path}", "experiment=resnet18", "model.net.freeze_backbone=true"],
    )
    assert cfg.model.net._target_ == "fmnist_lightning.models.resnet.ResNet18"
    assert cfg.model.net.freeze_backbone is True and cfg.model.weights is None
    assert cfg.data.augment.crop is True
