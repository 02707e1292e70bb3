"""The benchmark: the documented quick command on synthetic data produces every figure, sane;
FLOPs are torch's count; the environment is collect_env's; --eval-only times a checkpoint."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.utils.collect_env import SystemEnv
from torch.utils.flop_counter import FlopCounterMode

from fmnist_lightning.benchmark import main, parse_args, synthetic_sizes, table
from fmnist_lightning.benchmarking.flops import matmul_products
from fmnist_lightning.benchmarking.timing import StepTimer
from fmnist_lightning.data.datamodule import split_indices
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.models.hparams import plain
from fmnist_lightning.models.module import build_network, load_module
from fmnist_lightning.models.runtime import resolve_precision
from fmnist_lightning.training.machine import cpu_model
from helpers.compose import compose
from helpers.data import make_datamodule, write_fashion_mnist

LEGACY_CHECKPOINT = Path(__file__).parent / "fixtures" / "legacy-0.1.0" / "vgg_small.ckpt"
# --quick: 2 warm-up steps, then 3 windows of 2 steps (+1 step that ends the last window).
QUICK_REPEATS, QUICK_BATCHES = 3, 2 + 3 * 2 + 1
QUICK_TEST = 500
SECTIONS = {
    "created", "command", "environment", "settings", "train", "data_wait", "eval", "memory",
    "flops", "epoch", "baseline", "targets", "phase_seconds",
}  # fmt: skip


@pytest.fixture(scope="module")
def default_cfg():
    return compose("train")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    """The command docs/performance.md gives, exactly: ``--quick --synthetic`` (and --output)."""
    output = tmp_path_factory.mktemp("benchmark") / "bench.json"
    threads = torch.get_num_threads()
    returned = main(["--quick", "--synthetic", "--output", str(output)])
    return returned, json.loads(output.read_text()), threads


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_the_documented_quick_command_writes_every_figure(quick_result):
    returned, result, _ = quick_result
    assert result == json.loads(json.dumps(returned))
    assert set(result) == SECTIONS
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
        *result["phase_seconds"].values(),
    ):
        assert positive(value), value
    assert set(result["phase_seconds"]) == {
        "trainer_fit", "trainer_test", "plain_loop", "flops_and_matmul", "baseline",
    }  # fmt: skip
    assert 0 < train["lightning_vs_plain"] < 2
    assert train["lightning_vs_plain"] == pytest.approx(
        train["lightning_images_per_s"] / train["plain_images_per_s"]
    )
    assert 0 <= wait["data_wait_fraction"] < 1
    assert 0 < wait["fetch_fraction"] < 1
    assert flops["fraction_of_matmul_peak"] == pytest.approx(
        flops["achieved_train_flops"] / flops["matmul_peak_flops"]
    )
    assert flops["matmul_peak_flops"] == max(flops["matmul_peak_flops_by_kernel"].values())
    assert set(flops["matmul_peak_flops_by_kernel"]) == {"torch.mm", "onednn_conv1x1"}
    assert result["memory"]["peak_gpu_mib"] is None
    assert 100 < result["memory"]["peak_rss_mib"] < 64_000


def test_the_quick_epoch_holds_exactly_the_timed_windows(quick_result, default_cfg):
    """At the config's batch size (the bug: 4 batches of 128 were too few for one window)."""
    _, result, _ = quick_result
    settings, epoch, train = result["settings"], result["epoch"], result["train"]
    batch_size = default_cfg.data.batch_size
    assert settings["batch_size"] == batch_size == 64
    assert (settings["warmup"], settings["steps"], settings["repeats"]) == (2, 2, 3)
    assert len(train["lightning_window_seconds"]) == QUICK_REPEATS
    assert len(train["plain_window_seconds"]) == QUICK_REPEATS
    # Full batches only: the epoch is the warm-up, the windows and the step that ends them.
    assert epoch["train_images"] == QUICK_BATCHES * batch_size
    split = split_indices(epoch["train_images"] + epoch["val_images"], 0.2, 0)
    assert (len(split[0]), len(split[1])) == (epoch["train_images"], epoch["val_images"])
    assert epoch["default_max_epochs"] == default_cfg.trainer.max_epochs == 10
    assert epoch["projected_run_minutes"] * 60 > 10 * epoch["seconds"]
    assert result["eval"]["test_images"] == QUICK_TEST
    assert len(result["eval"]["window_seconds"]) == QUICK_REPEATS  # warm-up run excluded


def test_the_table_prints_every_figure_with_its_unit_and_target(quick_result):
    _, result, _ = quick_result
    console = Console(record=True, width=300)
    console.print(table(result))
    rows = {
        line.split("│")[1].strip(): line.split("│")[2:4]
        for line in console.export_text().splitlines()
        if line.count("│") == 4
    }
    value, target = rows["train: lightning_images_per_s"]
    assert value.strip() == f"{result['train']['lightning_images_per_s']:,.0f} images/s"
    assert rows["train: step_ms"][0].strip().endswith(" ms")
    assert rows["memory: peak_rss_mib"][0].strip().endswith(" MiB")
    assert rows["flops: achieved_train_flops"][0].strip().endswith(" FLOP/s")
    assert rows["epoch: projected_run_minutes"][0].strip().endswith(" min")
    assert "(target < 8.0 min)" in rows["epoch: projected_run_minutes"][1]  # in the figure's unit
    assert rows["eval: test_images"][0].strip() == f"{QUICK_TEST}"  # a count: no unit
    assert rows["baseline: speedup_vs_textbook"][0].strip().endswith(" x")
    value, target = rows["train: lightning_vs_plain"]
    assert value.strip().endswith("%") and "(target ≥ 90.00%)" in target
    assert target.strip().startswith(("met", "missed"))
    assert "memory: peak_gpu_mib" not in rows  # null on a CPU


def test_records_the_setup_it_measured(quick_result, tmp_path):
    _, result, threads = quick_result
    env, settings = result["environment"], result["settings"]
    assert set(env["collect_env"]) == set(SystemEnv._fields)
    assert env["collect_env"]["torch_version"] == env["versions"]["torch"] == torch.__version__
    assert env["cpu_model"] == cpu_model(env["collect_env"]["cpu_info"])
    assert env["versions"]["lightning"] and env["versions"]["hydra-core"]
    assert env["torch_threads"] == threads == torch.get_num_threads()
    assert env["device"] == "cpu" and env["gpu_model"] is None
    assert result["command"].startswith("python -m fmnist_lightning.benchmark --quick --synthetic")
    assert settings["data"] == "synthetic"
    assert settings["precision"] == resolve_precision("auto", "auto")  # resolved, never "auto"
    assert settings["channels_last"] is True and settings["compile"] is False
    assert result["baseline"]["batch_size"] == 32 and result["baseline"]["precision"] == "32-true"


def test_flops_are_torch_flop_counter_counts_of_the_network(quick_result, default_cfg):
    _, result, _ = quick_result
    flops = result["flops"]
    net = build_network(plain(default_cfg.model.net), num_classes=10).train()
    images = torch.zeros(4, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(images), torch.zeros(4, dtype=torch.long)).backward()
    assert flops["train_flops_per_image"] == counter.get_total_flops() // 4
    assert sum(flops["train_flops_by_operator"].values()) == flops["train_flops_per_image"]

    # The convention by hand: forward = 2 x weights x output positions (biases not counted);
    # backward = 2 x forward, less the first convolution's input gradient (never computed).
    mult_adds = []

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        positions = output[0, 0].numel() if isinstance(module, nn.Conv2d) else 1
        mult_adds.append(module.weight.numel() * positions)

    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(count)
    net(torch.zeros(1, 1, 28, 28))
    assert flops["forward_flops_per_image"] == 2 * sum(mult_adds)
    assert flops["train_flops_per_image"] == 3 * 2 * sum(mult_adds) - 2 * mult_adds[0]
    assert flops["achieved_train_flops"] == pytest.approx(
        flops["train_flops_per_image"] * result["train"]["lightning_images_per_s"]
    )


def test_eval_only_times_the_inference_path_of_a_checkpoint(tmp_path):
    output = tmp_path / "eval.json"
    argv = ["--eval-only", str(LEGACY_CHECKPOINT), "--quick", "--synthetic", "--threads", "1"]
    threads = torch.get_num_threads()
    result = main([*argv, "--output", str(output)])
    assert json.loads(output.read_text()) == json.loads(json.dumps(result))
    assert torch.get_num_threads() == threads  # --threads applies to the run only
    assert result["environment"]["torch_threads"] == 1
    assert result["settings"]["test_images"] == QUICK_TEST
    figures = result["eval_only"]
    assert figures["reference_precision"] == "32-true"
    assert list(figures["by_precision"]) == ["32-true", "bf16-mixed"]
    for row in figures["by_precision"].values():
        assert positive(row["images_per_s"]) and positive(row["cpu_seconds"])
        assert len(row["window_seconds"]) == QUICK_REPEATS
        assert row["wall_seconds"] == pytest.approx(QUICK_TEST / row["images_per_s"])
        assert 0 <= row["agreement"] <= 1
    # The same test images (the synthetic test split does not depend on the training size),
    # through the same path, give the same accuracy.
    module = load_module(LEGACY_CHECKPOINT)
    datamodule = make_datamodule(
        write_fashion_mnist(tmp_path / "data", 10, QUICK_TEST),
        mean=module.hparams.mean,
        std=module.hparams.std,
    )
    datamodule.setup("test")
    images, labels = datamodule.tensors["test"].tensors
    predicted = predict_probabilities(module, images, 1000, "32-true").argmax(dim=1)
    fp32 = figures["by_precision"]["32-true"]
    assert fp32["accuracy"] == (predicted == labels).float().mean().item() > 0.5
    assert fp32["agreement"] == 1.0
    console = Console(record=True, width=300)
    console.print(table(result))
    text = console.export_text()
    assert "bf16-mixed: agreement" in text and f"{fp32['images_per_s']:,.0f} images/s" in text


def test_eval_only_refuses_a_missing_checkpoint_in_one_line(tmp_path):
    """A refused input (cli.run prints it as "Error: ..." and exits 2), and no JSON written."""
    with pytest.raises(ValueError, match=r"^No checkpoint file at .*missing\.ckpt") as error:
        main(["--eval-only", str(tmp_path / "missing.ckpt"), "--output", str(tmp_path / "x")])
    assert "\n" not in str(error.value) and not (tmp_path / "x").exists()


@pytest.mark.parametrize("batch_size", [16, 100, 128, 512])
@pytest.mark.parametrize("val_fraction", [0.1, 0.2, 0.37])
def test_quick_synthetic_data_gives_every_window_in_full_batches(batch_size, val_fraction):
    cfg = compose("train", [f"data.batch_size={batch_size}", f"data.val_fraction={val_fraction}"])
    count, test = synthetic_sizes(cfg, QUICK_BATCHES, quick=True)
    train = len(split_indices(count, val_fraction, 0)[0])
    assert train >= QUICK_BATCHES * batch_size and test == QUICK_TEST
    # And hardly more than that (or the minimum, 640).
    assert count == 640 or count <= QUICK_BATCHES * batch_size / (1 - val_fraction) + 2
    assert synthetic_sizes(cfg, QUICK_BATCHES, quick=False) == (60_000, 10_000)


def test_too_few_batches_for_a_window_is_one_actionable_sentence():
    timer = StepTimer(2, 2)
    timer.batch_starts = [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(UsageError, match=r"4 training batches, too few .* lower --warmup"):
        timer.windows()


def test_the_onednn_product_is_the_matrix_product():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 64, generator=generator), torch.randn(64, 64, generator=generator)
    products = matmul_products(a, b)
    assert set(products) == {"torch.mm", "onednn_conv1x1"}
    assert torch.equal(products["torch.mm"](), a @ b)
    # The convolution's output (16 images, 64 channels, 4 x 1 positions) holds the rows of a @ b.
    rows = products["onednn_conv1x1"]().squeeze(-1).permute(0, 2, 1).reshape(64, 64)
    assert torch.allclose(rows, a @ b, atol=1e-4)


def test_cpu_model_is_read_from_collect_envs_cpu_info():
    assert cpu_model("Architecture: x86_64\nModel name:   AMD EPYC 7B13\nCPU(s): 2") == (
        "AMD EPYC 7B13"
    )
    assert cpu_model(None) is None and cpu_model("no such line") is None


def test_windows_are_cut_from_step_start_times():
    timer = StepTimer(warmup=1, steps=3)
    timer.batch_starts = [0.0, 1.0, 2.5, 3.0, 4.0, 6.0, 7.0, 9.0]
    assert timer.windows() == [3.0, 5.0]
    timer.warmup = 6  # no window left: refused (see below)
    with pytest.raises(UsageError, match="8 training batches, too few"):
        timer.windows()


def test_between_steps_share_is_the_gap_over_the_step_cycle():
    timer = StepTimer(warmup=1)
    timer.batch_starts = [0.0, 10.0, 20.0, 30.0]
    timer.batch_ends = [9.0, 19.5, 29.9, 39.0]
    assert timer.between_steps_fraction() == pytest.approx(0.03)  # median of 0.05, 0.01


def test_bad_options_are_refused_with_the_option_named(capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(["--steps", "0"])
    assert refused.value.code == 2
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err
    args = parse_args(["--quick", "--steps", "9"])
    assert (args.steps, args.warmup, args.repeats, args.matmul_size) == (2, 2, 3, 256)


@pytest.mark.slow
def test_python_dash_m_runs_the_package():
    result = subprocess.run(
        [sys.executable, "-m", "fmnist_lightning.benchmark", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for option in ("--quick", "--synthetic", "--eval-only", "--no-baseline", "--threads"):
        assert option in result.stdout
