"""Needs the real Fashion-MNIST (FMNIST_DATA_DIR); skipped with a reason without it."""

from fmnist_lightning.train import train
from helpers.compose import tiny


def test_brief_training_on_real_data_beats_80_percent(real_data_root, tmp_path):
    overrides = [
        "data.batch_size=128",
        "data.eval_batch_size=1000",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=50",
        "trainer.precision=auto",
    ]
    summary = train(tiny(real_data_root, tmp_path, *overrides))
    assert summary["test_acc"] > 0.80
