"""The benchmark's figures as rich tables, each with the target it is measured against."""

from typing import Any

from rich.table import Table

# What the figures were measured against when the defaults were chosen (docs/performance.md).
TARGETS = {
    "lightning_vs_plain": 0.90,
    "data_wait_fraction": 0.03,
    "speedup_vs_textbook": 2.2,
    "projected_run_minutes": 8.0,
    "fraction_of_matmul_peak": 0.60,
}


def mark(value: float, target: float, spec: str = ".0%", higher_is_better: bool = True) -> str:
    """ "met" or "missed", and the target, for one figure."""
    ok = value >= target if higher_is_better else value < target
    verdict = "[green]met[/]" if ok else "[red]missed[/]"
    return f"{verdict} (target {'≥' if higher_is_better else '<'} {target:{spec}})"


def new_table(title: str) -> Table:
    out = Table(title=title, title_justify="left")
    out.add_column("figure")
    out.add_column("value", justify="right")
    out.add_column("target / note")
    return out


def machine(env: dict[str, Any]) -> str:
    return f"{env['device']} ({env['cpu_model']}, {env['torch_threads']} threads)"


def table(result: dict[str, Any]) -> Table:
    """The training benchmark's figures, one row each."""
    s, env, targets = result["settings"], result["environment"], result["targets"]
    out = new_table(
        f"fmnist-lightning benchmark: {s['data']} data, {machine(env)}, {s['precision']}, "
        f"{'channels_last' if s['channels_last'] else 'contiguous'}, "
        f"compile={s['compile']}, batch {s['batch_size']}"
    )
    t, d, f = result["train"], result["data_wait"], result["flops"]
    out.add_row(
        "train, Trainer (images/s)",
        f"{t['lightning_images_per_s']:,.0f}",
        f"{s['lightning_windows']} windows of {s['steps']} steps",
    )
    out.add_row(
        "train, plain loop (images/s)", f"{t['plain_images_per_s']:,.0f}", f"{s['repeats']} windows"
    )
    out.add_row(
        "Trainer / plain loop",
        f"{t['lightning_vs_plain']:.1%}",
        mark(t["lightning_vs_plain"], targets["lightning_vs_plain"]),
    )
    out.add_row(
        "step time (ms)",
        f"{t['step_ms']:.1f}",
        f"first step {t['first_step_s']:.2f} s (compiles if model.compile)",
    )
    out.add_row(
        "data wait (share of step)",
        f"{d['data_wait_fraction']:.2%}",
        mark(d["data_wait_fraction"], targets["data_wait_fraction"], higher_is_better=False)
        + ", upper bound",
    )
    out.add_row(
        "batch fetch alone (ms)",
        f"{d['fetch_ms_per_batch']:.3f}",
        f"{d['fetch_fraction']:.2%} of a step",
    )
    out.add_row(
        "eval, Trainer.test (images/s)",
        f"{result['eval']['images_per_s']:,.0f}",
        f"{result['eval']['test_images']:,} test images",
    )
    out.add_row("peak RSS (MiB)", f"{result['memory']['peak_rss_mib']:,.0f}", "")
    out.add_row(
        "train FLOP/s achieved",
        f"{f['achieved_train_flops'] / 1e9:,.1f} G",
        f"{f['train_flops_per_image'] / 1e6:.1f} MFLOP/image (FlopCounterMode, fwd + bwd)",
    )
    out.add_row(
        f"matmul peak ({f['matmul_dtype']}, n={f['matmul_size']})",
        f"{f['matmul_peak_flops'] / 1e9:,.1f} G",
        "best of " + ", ".join(f["matmul_peak_flops_by_kernel"]),
    )
    out.add_row(
        "achieved / matmul peak",
        f"{f['fraction_of_matmul_peak']:.1%}",
        mark(f["fraction_of_matmul_peak"], targets["fraction_of_matmul_peak"]),
    )
    if e := result["epoch"]:
        out.add_row(
            "one epoch, train + val (s)",
            f"{e['seconds']:.1f}",
            f"{e['train_images']:,} + {e['val_images']:,} images",
        )
        out.add_row(
            f"projected {e['default_max_epochs']}-epoch run (min)",
            f"{e['projected_run_minutes']:.1f}",
            mark(e["projected_run_minutes"], targets["projected_run_minutes"], "g", False),
        )
    if b := result["baseline"]:
        out.add_row(
            "textbook fp32 baseline (images/s)",
            f"{b['images_per_s']:,.0f}",
            f"ToTensor, {b['workers']} workers, batch {b['batch_size']}",
        )
        out.add_row(
            "speed-up vs textbook",
            f"{b['speedup_vs_textbook']:.2f}x",
            mark(b["speedup_vs_textbook"], targets["speedup_vs_textbook"], "g"),
        )
    return out


def eval_only_table(result: dict[str, Any]) -> Table:
    """The inference speed of one checkpoint, one row per precision."""
    s, figures = result["settings"], result["eval_only"]
    out = new_table(
        f"fmnist-lightning inference speed: {s['checkpoint']}, {s['test_images']:,} {s['data']} "
        f"test images, batch {s['eval_batch_size']}, {machine(result['environment'])}"
    )
    reference = figures["reference_precision"]
    for precision, row in figures["by_precision"].items():
        note = f"wall {row['wall_seconds']:.2f} s, cpu {row['cpu_seconds']:.2f} s, "
        note += f"accuracy {row['accuracy']:.2%}"
        if precision != reference:
            note += f", same class as {reference}: {row['agreement']:.2%}"
        out.add_row(f"{precision} (images/s)", f"{row['images_per_s']:,.0f}", note)
    return out
