"""Needs the real Fashion-MNIST (FMNIST_DATA_DIR); skipped with a reason without it."""

from conftest import tiny_overrides
from fmnist_lightning.train import train


def test_brief_training_on_real_data_beats_80_percent(real_data_root, compose_train, tmp_path):
    overrides = tiny_overrides(real_data_root, tmp_path) + [
        "data.batch_size=128",
        "data.eval_batch_size=1000",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=50",
        "trainer.precision=auto",
    ]
    summary = train(compose_train(overrides))
    assert summary["test_acc"] > 0.80
