"""The benchmark in its quick mode on synthetic data: every figure is produced and sane."""

import json
import math

import pytest
import torch
from torch import nn

from fmnist_lightning import benchmark
from fmnist_lightning.models.vgg import VGGStyleCNN

# Quick mode writes 640 training images (512 train + 128 validation) and 500 test images.
QUICK_TRAIN, QUICK_TEST = 640, 500


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    output = tmp_path_factory.mktemp("benchmark") / "bench.json"
    # One thread: on a busy 2-core machine two OpenMP threads can wait on each other for long.
    argv = ["--quick", "--synthetic", "--batch-size", "16", "--baseline-workers", "1"]
    argv += ["--threads", "1"]
    returned = benchmark.main([*argv, "--output", str(output)])
    return returned, json.loads(output.read_text())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_json_holds_every_figure_and_matches_what_main_returns(quick_result):
    returned, result = quick_result
    assert result == json.loads(json.dumps(returned))
    train, wait, flops = result["train"], result["data_wait"], result["flops"]
    for value in (
        train["lightning_images_per_s"],
        train["plain_images_per_s"],
        train["step_ms"],
        train["first_step_s"],
        wait["fetch_ms_per_batch"],
        result["eval"]["images_per_s"],
        result["memory"]["peak_rss_mib"],
        flops["achieved_train_flops"],
        flops["matmul_peak_flops"],
        result["epoch"]["seconds"],
        result["epoch"]["projected_run_minutes"],
        result["baseline"]["images_per_s"],
        result["baseline"]["speedup_vs_textbook"],
    ):
        assert positive(value), value
    assert 0 < train["lightning_vs_plain"] < 2
    assert train["lightning_vs_plain"] == pytest.approx(
        train["lightning_images_per_s"] / train["plain_images_per_s"]
    )
    assert 0 <= wait["data_wait_fraction"] < 1
    assert 0 < wait["fetch_fraction"] < 1
    assert flops["fraction_of_matmul_peak"] == pytest.approx(
        flops["achieved_train_flops"] / flops["matmul_peak_flops"]
    )
    assert set(flops["matmul_peak_flops_by_kernel"]) >= {"torch.mm"}
    # Windows: 3 plain ones; the Trainer's come from the whole epoch of 512 / 16 = 32 steps.
    assert len(train["plain_window_seconds"]) == 3
    assert result["settings"]["lightning_windows"] == (32 - 2 - 1) // 2
    assert 100 < result["memory"]["peak_rss_mib"] < 64_000


def test_records_the_setup_it_measured(quick_result):
    _, result = quick_result
    env, settings = result["environment"], result["settings"]
    assert env["versions"]["torch"] == torch.__version__
    assert env["versions"]["lightning"] and env["cpu_model"]
    assert env["torch_threads"] == 1
    assert "--threads 1" in result["command"]
    assert env["device"] == "cpu" and env["gpu_model"] is None
    assert settings["data"] == "synthetic" and settings["batch_size"] == 16
    assert settings["precision"] in ("bf16-mixed", "32-true")  # "auto" resolved
    assert settings["channels_last"] is True and settings["compile"] is False
    assert result["baseline"]["batch_size"] == 32 and result["baseline"]["precision"] == "32-true"


def test_epoch_and_eval_cover_the_whole_splits(quick_result):
    _, result = quick_result
    epoch = result["epoch"]
    assert epoch["train_images"] + epoch["val_images"] == QUICK_TRAIN
    assert epoch["default_max_epochs"] == 10
    assert epoch["projected_run_minutes"] * 60 > 10 * epoch["seconds"]
    assert result["eval"]["test_images"] == QUICK_TEST
    assert len(result["eval"]["window_seconds"]) == 3  # warm-up run excluded


def test_flops_follow_the_stated_convention(quick_result):
    """torchinfo's count equals weights (and biases) times output positions, x 2 x 3 for training."""
    _, result = quick_result
    net, counted = VGGStyleCNN(), []

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        positions = output[0, 0].numel() if isinstance(module, nn.Conv2d) else 1
        counted.append(sum(p.numel() for p in module.parameters()) * positions)

    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(count)
    net(torch.zeros(1, 1, 28, 28))
    flops = result["flops"]
    assert flops["mult_adds_per_image"] == sum(counted)
    assert flops["train_flops_per_image"] == 6 * sum(counted)
    assert flops["achieved_train_flops"] == pytest.approx(
        6 * sum(counted) * result["train"]["lightning_images_per_s"]
    )


def test_windows_are_cut_from_step_start_times():
    starts = [0.0, 1.0, 2.5, 3.0, 4.0, 6.0, 7.0, 9.0]
    assert benchmark.window_seconds(starts, warmup=1, steps=3) == [3.0, 5.0]
    assert benchmark.window_seconds(starts, warmup=6, steps=3) == []


def test_between_steps_share_is_the_gap_over_the_step_cycle():
    timer = benchmark.StepTimer()
    timer.batch_starts = [0.0, 10.0, 20.0, 30.0]
    timer.batch_ends = [9.0, 19.5, 29.9, 39.0]
    assert timer.between_steps_fraction(warmup=1) == pytest.approx(0.03)  # median of 0.05, 0.01


def test_bad_options_are_refused_with_the_option_named(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--steps", "0"])
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err
