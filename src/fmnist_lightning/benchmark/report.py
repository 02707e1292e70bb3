"""The benchmark's figures as rich tables, each with the target it is measured against.

Each row is a line of ``figure | value | target or note``, filled in from the JSON result
(``str.format`` reads its sections, the verdicts of :data:`MARKS` and the scaled FLOP/s).
"""

from typing import Any

from rich.table import Table

# What the figures were measured against when the defaults were chosen (docs/performance.md):
# figure: (its section of the result, the target, its format, whether higher is better).
MARKS = {
    "lightning_vs_plain": ("train", 0.90, ".0%", True),
    "data_wait_fraction": ("data_wait", 0.03, ".0%", False),
    "speedup_vs_textbook": ("baseline", 2.2, "g", True),
    "projected_run_minutes": ("epoch", 8.0, "g", False),
    "fraction_of_matmul_peak": ("flops", 0.60, ".0%", True),
}
TARGETS = {name: target for name, (_, target, *_) in MARKS.items()}
MACHINE = "{environment[device]} ({environment[cpu_model]}, {environment[torch_threads]} threads)"
TRAINING = f"""fmnist-lightning benchmark: {{settings[data]}} data, {MACHINE}, {{settings[precision]}}, {{memory_format}}, compile={{settings[compile]}}, batch {{settings[batch_size]}}
train, Trainer (images/s) | {{train[lightning_images_per_s]:,.0f}} | {{settings[lightning_windows]}} windows of {{settings[steps]}} steps
train, plain loop (images/s) | {{train[plain_images_per_s]:,.0f}} | {{settings[repeats]}} windows
Trainer / plain loop | {{train[lightning_vs_plain]:.1%}} | {{marks[lightning_vs_plain]}}
step time (ms) | {{train[step_ms]:.1f}} | first step {{train[first_step_s]:.2f}} s (compiles if model.compile)
data wait (share of step) | {{data_wait[data_wait_fraction]:.2%}} | {{marks[data_wait_fraction]}}, upper bound
batch fetch alone (ms) | {{data_wait[fetch_ms_per_batch]:.3f}} | {{data_wait[fetch_fraction]:.2%}} of a step
eval, Trainer.test (images/s) | {{eval[images_per_s]:,.0f}} | {{eval[test_images]:,}} test images
peak RSS (MiB) | {{memory[peak_rss_mib]:,.0f}} |
train FLOP/s achieved | {{achieved_gflops:,.1f}} G | {{train_mflops:.1f}} MFLOP/image (FlopCounterMode, fwd + bwd)
matmul peak ({{flops[matmul_dtype]}}, n={{flops[matmul_size]}}) | {{peak_gflops:,.1f}} G | best of {{kernels}}
achieved / matmul peak | {{flops[fraction_of_matmul_peak]:.1%}} | {{marks[fraction_of_matmul_peak]}}"""
EPOCH = """
one epoch, train + val (s) | {epoch[seconds]:.1f} | {epoch[train_images]:,} + {epoch[val_images]:,} images
projected {epoch[default_max_epochs]}-epoch run (min) | {epoch[projected_run_minutes]:.1f} | {marks[projected_run_minutes]}"""
BASELINE = """
textbook fp32 baseline (images/s) | {baseline[images_per_s]:,.0f} | ToTensor, {baseline[workers]} workers, batch {baseline[batch_size]}
speed-up vs textbook | {baseline[speedup_vs_textbook]:.2f}x | {marks[speedup_vs_textbook]}"""
EVAL_ONLY = f"fmnist-lightning inference speed: {{settings[checkpoint]}}, {{settings[test_images]:,}} {{settings[data]}} test images, batch {{settings[eval_batch_size]}}, {MACHINE}"
PRECISION = "\n{precision} (images/s) | {images_per_s:,.0f} | wall {wall_seconds:.2f} s, cpu {cpu_seconds:.2f} s, accuracy {accuracy:.2%}"


def mark(value: float, target: float, spec: str = ".0%", higher_is_better: bool = True) -> str:
    """ "met" or "missed", and the target, for one figure."""
    ok = value >= target if higher_is_better else value < target
    verdict = "[green]met[/]" if ok else "[red]missed[/]"
    return f"{verdict} (target {'≥' if higher_is_better else '<'} {target:{spec}})"


def new_table(text: str) -> Table:
    """A table titled by the first line of ``text``, a row for each further line."""
    title, *rows = text.splitlines()
    out = Table(title=title, title_justify="left")
    for column, justify in (("figure", "left"), ("value", "right"), ("target / note", "left")):
        out.add_column(column, justify=justify)
    for row in rows:
        out.add_row(*(cell.strip() for cell in row.split("|")))
    return out


def table(result: dict[str, Any]) -> Table:
    """The training benchmark's figures, one row each."""
    marks = {
        name: mark(result[section][name], result["targets"][name], spec, higher)
        for name, (section, _, spec, higher) in MARKS.items()
        if result[section]
    }
    flops = result["flops"]
    text = TRAINING.format_map(
        {
            **result,
            "marks": marks,
            "memory_format": "channels_last"
            if result["settings"]["channels_last"]
            else "contiguous",
            "achieved_gflops": flops["achieved_train_flops"] / 1e9,
            "train_mflops": flops["train_flops_per_image"] / 1e6,
            "peak_gflops": flops["matmul_peak_flops"] / 1e9,
            "kernels": ", ".join(flops["matmul_peak_flops_by_kernel"]),
        }
    )
    text += EPOCH.format_map({**result, "marks": marks}) if result["epoch"] else ""
    text += BASELINE.format_map({**result, "marks": marks}) if result["baseline"] else ""
    return new_table(text)


def eval_only_table(result: dict[str, Any]) -> Table:
    """The inference speed of one checkpoint, one row per precision."""
    text, figures = EVAL_ONLY.format_map(result), result["eval_only"]
    reference = figures["reference_precision"]
    for precision, row in figures["by_precision"].items():
        text += PRECISION.format(precision=precision, **row)
        if precision != reference:
            text += f", same class as {reference}: {row['agreement']:.2%}"
    return new_table(text)
