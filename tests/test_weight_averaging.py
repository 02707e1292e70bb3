"""averaging=ema and averaging=swa (conf/averaging/): Lightning's callbacks, tested as runs use them.

EMA must change what is validated, checkpointed and tested (the average) and nothing else:
the same batches in the same order and the same raw weights as averaging=none.
"""

import pandas as pd
import pytest
import torch
from torch.optim.swa_utils import get_ema_avg_fn

from fmnist_lightning.inference.classifier import load_classifier
from fmnist_lightning.models.checkpoint_file import read_checkpoint
from fmnist_lightning.train import train
from helpers.compose import compose, tiny
from helpers.recorders import Recorder

DECAY = 0.5  # far from 1, so that the average is far from the raw weights after a few steps
SMALL_MODEL = ["model.net.blocks=[[8],[16]]", "model.net.dense=[16]", "model.net.dropout=0.1"]
EXACT = [
    *SMALL_MODEL,
    "trainer.deterministic=true",
    "trainer.num_sanity_val_steps=0",
    "~analysis",
    "+callbacks.record._target_=helpers.recorders.Recorder",
]


def ema_of(steps: list[dict[str, torch.Tensor]], decay: float) -> dict[str, torch.Tensor]:
    """The EMA after these steps as torch.optim.swa_utils computes it: the first step's
    weights, then ``avg_fn(average, weights, n)`` for every later step."""
    average_fn = get_ema_avg_fn(decay)
    average = {name: value.clone() for name, value in steps[0].items()}
    for count, step in enumerate(steps[1:], start=1):
        for name, value in step.items():
            average[name] = average_fn(average[name], value, torch.tensor(count))
    return average


def assert_same(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        torch.testing.assert_close(left[name], right[name], rtol=0, atol=1e-7, msg=name)


def net_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if k.startswith("net.")}


@pytest.fixture(scope="module")
def runs(synthetic_root, tmp_path_factory):
    """The same tiny fit with averaging=none and averaging=ema (decay 0.5), recorded."""
    recorded = {}
    for name in ("none", "ema"):
        run_dir = tmp_path_factory.mktemp(name)
        extra = [f"averaging={name}"]
        if name == "ema":
            extra.append(f"callbacks.weight_averaging.decay={DECAY}")
        summary = train(tiny(synthetic_root, run_dir, *EXACT, *extra))
        recorded[name] = (run_dir, summary, Recorder.last())
    return recorded


def test_averaging_none_adds_no_callback_and_ema_adds_the_fixed_one(tmp_path):
    plain = compose("train", [f"paths.run_dir={tmp_path}"])
    assert "weight_averaging" not in plain.callbacks
    ema = compose("train", [f"paths.run_dir={tmp_path}", "averaging=ema"]).callbacks
    assert ema.weight_averaging._target_.endswith("weight_averaging.EMAWeightAveraging")
    assert (ema.weight_averaging.decay, ema.weight_averaging.update_every_n_steps) == (0.999, 1)
    swa = compose("train", [f"paths.run_dir={tmp_path}", "averaging=swa"]).callbacks
    assert swa.weight_averaging.swa_epoch_start == 0.8 and swa.weight_averaging.swa_lrs > 0
    assert swa.early_stopping is None  # stopping early would skip the average


def test_ema_changes_neither_the_batches_nor_the_raw_weights(runs):
    none, ema = runs["none"][2], runs["ema"][2]
    assert len(none.labels) == len(ema.labels) == 20  # 10 steps per epoch, 2 epochs
    for a, b in zip(none.labels, ema.labels, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(none.trained, ema.trained, strict=True):
        assert_same(a, b)
    # The checkpoints agree too: EMA's raw weights are kept beside the average.
    raw = read_checkpoint(runs["ema"][0] / "checkpoints" / "last.ckpt")["current_model_state"]
    plain = read_checkpoint(runs["none"][0] / "checkpoints" / "last.ckpt")["state_dict"]
    assert_same(net_weights(raw), net_weights(plain))


def test_ema_validates_the_average_recomputed_with_swa_utils(runs):
    recorder = runs["ema"][2]
    assert len(recorder.validated) == 2
    for epoch, validated in enumerate(recorder.validated):
        steps = recorder.trained[: 10 * (epoch + 1)]
        assert_same(validated, ema_of(steps, DECAY))
        raw = steps[-1]
        assert any(not torch.equal(validated[name], raw[name]) for name in raw)


def test_the_tested_best_checkpoint_holds_the_average_that_earned_its_val_acc(runs):
    run_dir, summary, recorder = runs["ema"]
    best = run_dir / summary["best_checkpoint"]
    checkpoint = read_checkpoint(best)
    epoch = checkpoint["epoch"]
    assert_same(net_weights(checkpoint["state_dict"]), recorder.validated[epoch])
    assert recorder.tested is not None
    assert_same(recorder.tested, recorder.validated[epoch])  # not the raw weights
    raw = checkpoint["current_model_state"]
    assert any(not torch.equal(raw[k], checkpoint["state_dict"][k]) for k in recorder.tested)
    # load_classifier (and so predict, export, init_from) get the average as well.
    classifier = load_classifier(best)
    loaded = {name: p.detach() for name, p in classifier.module.named_parameters()}
    assert_same(loaded, recorder.validated[epoch])
    predictions = classifier.predict(torch.zeros(3, 28, 28, dtype=torch.uint8))
    assert predictions.probabilities.shape == (3, 10)


def test_a_resumed_ema_run_continues_the_same_average(synthetic_root, tmp_path, runs):
    stop = ["+callbacks.stop._target_=helpers.faults.SignalAtEpochEnd", "+callbacks.stop.epoch=0"]
    overrides = [*EXACT, "averaging=ema", f"callbacks.weight_averaging.decay={DECAY}"]
    with pytest.raises(RuntimeError, match="interrupted"):
        train(tiny(synthetic_root, tmp_path, *overrides, *stop))
    train(tiny(synthetic_root, tmp_path, *overrides, *stop, f"resume={tmp_path}"))
    resumed = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    straight = read_checkpoint(runs["ema"][0] / "checkpoints" / "last.ckpt")
    for key in ("state_dict", "current_model_state"):
        assert_same(net_weights(resumed[key]), net_weights(straight[key]))


@pytest.mark.parametrize("batch_norm", [True, False])
def test_swa_validates_and_saves_the_average_after_its_closing_epoch(
    synthetic_root, tmp_path, batch_norm
):
    overrides = [
        *SMALL_MODEL,
        f"model.net.batch_norm={str(batch_norm).lower()}",
        "averaging=swa",
        "callbacks.weight_averaging.swa_epoch_start=2",
        "trainer.max_epochs=3",
        "~analysis",
    ]
    summary = train(tiny(synthetic_root, tmp_path, *overrides))
    # One closing epoch copies the average in (and recomputes its BatchNorm statistics), then
    # validates it: without BatchNorm too, where Lightning alone would skip it.
    assert summary["epochs"] == 4
    validated_epochs = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["val_acc"])["epoch"]
    assert sorted(validated_epochs) == [0, 1, 2, 3]  # epoch 3: the average
    last = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    state = last["callbacks"]["StochasticWeightAveraging"]
    assert state["n_averaged"] == 2  # epochs 2 and 3 (1-based) were averaged
    average = state["average_model_state"]
    for name, value in last["state_dict"].items():
        if name.startswith("net.") and "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(value, average[name], rtol=0, atol=0, msg=name)
