"""Needs the real Fashion-MNIST (FMNIST_DATA_DIR); skipped with a reason without it.

One epoch of a narrow compact network (about a minute on two CPU cores): the real files are
read, split 80/20, normalised and learnt from, end to end. The seed network's own accuracy
is the results table's business, not the suite's (one epoch of it takes minutes here).
"""

import json

from fmnist_lightning.train import train
from helpers.compose import tiny


def test_one_epoch_on_real_data_beats_85_percent(real_data_root, tmp_path):
    overrides = [
        "model=compact",
        "model.net.stem_width=16",
        "model.net.widths=[24,48,96]",
        "data.batch_size=256",
        "data.eval_batch_size=1000",
        "optimizer.lr=4e-3",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=50",
    ]
    summary = train(tiny(real_data_root, tmp_path, *overrides))
    assert summary["test_acc"] > 0.85
    metrics = json.loads((tmp_path / "test_metrics.json").read_text())
    assert metrics["epochs"] == 1
    assert metrics["fit_seconds"] > 0
