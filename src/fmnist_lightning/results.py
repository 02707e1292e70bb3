"""The results table, regenerated from finished runs: test accuracy mean ± std over seeds.

    python -m fmnist_lightning.results lightning_logs/sweeps/<sweep> [more run or sweep folders]
        [--output results.md]

Every folder below the given ones that holds a finished run (``test_metrics.json``) is
one row of data. Runs are grouped by configuration: the command-line overrides the run
was started with (Hydra's ``.hydra/overrides.yaml``) minus the seed and paths, so the
three jobs of ``experiment=best -m seed=0,1,2`` form one row ``experiment=best``. Runs
started from Python, without Hydra's record, are labelled by their network instead.

It needs pandas and OmegaConf only: this command imports no torch.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.tables import markdown_table

# Overrides that do not change what is trained: where data and outputs live, and the seed.
IGNORED_OVERRIDES = (
    "seed",
    "data.root",
    "paths.",
    "hydra.",
    "+hydra.",
    "callbacks.progress_bar",
    "callbacks.progress_bar.",
)
HYDRA_OVERRIDES = Path(".hydra") / "overrides.yaml"


@dataclass
class Run:
    folder: Path
    configuration: str
    from_command_line: bool
    seed: int
    test_acc: float
    best_epoch: int | None
    epochs: int
    parameters: int
    seconds_per_epoch: float
    device: str


def is_ignored(override: str) -> bool:
    key = override.split("=", 1)[0]
    return any(
        key.startswith(name) if name.endswith(".") else key == name for name in IGNORED_OVERRIDES
    )


def describe_config(config: dict) -> str:
    """A label from the saved config, for runs without Hydra's overrides record."""
    model = config.get("model", {})
    net = model.get("net", model)  # release 0.1.0 kept the network's arguments in model
    label = net.get("_target_", "?").rsplit(".", 1)[-1]
    if net.get("batch_norm"):
        label += " + BN"
    augment = config.get("data", {}).get("augment") or {}
    switches = [name for name in ("crop", "flip", "erase") if augment.get(name)]
    if switches:
        label += " + " + "/".join(switches)
    return label


def configuration_of(folder: Path, config: dict) -> tuple[str, bool]:
    """(label, whether it is the command line's overrides)."""
    overrides_file = folder / HYDRA_OVERRIDES
    if overrides_file.is_file():
        overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) or []
        kept = [o for o in overrides if not is_ignored(o)]
        return (" ".join(kept) if kept else "default"), True
    return describe_config(config), False


def best_epoch(metrics_csv: Path) -> int | None:
    """The 1-based epoch with the highest validation accuracy (the tested checkpoint's)."""
    if not metrics_csv.is_file():
        return None
    epochs = run_files.epoch_metrics(metrics_csv)
    if "val_acc" not in epochs or epochs["val_acc"].isna().all():
        return None
    return int(epochs.loc[epochs["val_acc"].idxmax(), "epoch"]) + 1


def read_run(folder: Path) -> Run:
    test = run_files.read_json(folder / run_files.TEST_METRICS_JSON)
    config_file = folder / run_files.CONFIG_YAML
    config = OmegaConf.to_container(OmegaConf.load(config_file)) if config_file.is_file() else {}
    configuration, from_command_line = configuration_of(folder, config)
    return Run(
        folder=folder,
        configuration=configuration,
        from_command_line=from_command_line,
        seed=int(config.get("seed", -1)),
        test_acc=float(test["test_acc"]),
        best_epoch=best_epoch(folder / run_files.METRICS_CSV),
        epochs=int(test.get("epochs", 0)),
        parameters=int(test.get("parameters", 0)),
        seconds_per_epoch=float(test.get("seconds_per_epoch", float("nan"))),
        device=str(test.get("device", "?")),
    )


def find_runs(folders: list[Path]) -> tuple[list[Run], list[Path]]:
    """Finished runs under the folders (in the order given), and unfinished run folders."""
    finished, unfinished = [], []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"'{folder}' is not a folder: pass run or sweep folders.")
        for config_file in sorted(folder.rglob(run_files.CONFIG_YAML)):
            run_folder = config_file.parent
            if run_folder.name == ".hydra":
                continue
            if (run_folder / run_files.TEST_METRICS_JSON).is_file():
                finished.append(read_run(run_folder))
            else:
                unfinished.append(run_folder)
    return finished, unfinished


def summarise(found: list[Run]) -> pd.DataFrame:
    """One row per configuration, in the order configurations first appear."""
    frame = pd.DataFrame([vars(run) for run in found]).sort_values("seed", kind="stable")
    rows = []
    for configuration in dict.fromkeys(run.configuration for run in found):
        group = frame[frame["configuration"] == configuration]
        accuracy = group["test_acc"] * 100
        spread = f" ± {accuracy.std(ddof=1):.2f}" if len(group) > 1 else ""
        rows.append(
            {
                "configuration": f"`{configuration}`",
                "seeds": ", ".join(str(s) for s in group["seed"]),
                "test accuracy (%)": f"{accuracy.mean():.2f}{spread}",
                "best epoch": ", ".join(
                    "?" if pd.isna(e) else str(int(e)) for e in group["best_epoch"]
                ),
                "epochs run": ", ".join(str(e) for e in group["epochs"]),
                "parameters": ", ".join(f"{p:,}" for p in dict.fromkeys(group["parameters"])),
                "s / epoch": f"{group['seconds_per_epoch'].mean():.1f}",
                "device": ", ".join(dict.fromkeys(group["device"])),
            }
        )
    return pd.DataFrame(rows)


def reproduce_commands(found: list[Run]) -> list[str]:
    """The command that re-runs each command-line configuration over its seeds."""
    commands = {}
    for run in found:
        if run.from_command_line:
            commands.setdefault(run.configuration, []).append(run.seed)
    return [
        "python -m fmnist_lightning.train "
        + ("" if label == "default" else f"{label} ")
        + f"-m seed={','.join(str(s) for s in sorted(seeds))}"
        for label, seeds in commands.items()
    ]


def results_markdown(found: list[Run]) -> str:
    text = markdown_table(summarise(found))
    text += (
        "\n\nTest accuracy: mean ± sample standard deviation over seeds, of the checkpoint "
        "with the best validation accuracy (its epoch is *best epoch*, counted from 1). "
        "*s / epoch*: wall time of fitting divided by the epochs run, validation included."
    )
    commands = reproduce_commands(found)
    if commands:
        text += "\n\nReproduce with:\n\n```bash\n" + "\n".join(commands) + "\n```"
    return text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.results",
        description="Markdown table of finished runs: test accuracy mean ± std per configuration.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run folders or sweep folders")
    parser.add_argument(
        "--output", type=Path, default=Path("results.md"), help="Markdown file to write"
    )
    args = parser.parse_args(argv)
    try:
        found, unfinished = find_runs(args.folders)
    except FileNotFoundError as error:
        parser.error(str(error))
    if unfinished:
        print(
            f"Skipped {len(unfinished)} unfinished run(s) (no {run_files.TEST_METRICS_JSON}): "
            + ", ".join(str(f) for f in unfinished),
            file=sys.stderr,
        )
    if not found:
        parser.error(
            f"no finished runs (folders with {run_files.TEST_METRICS_JSON}) under "
            + ", ".join(str(f) for f in args.folders)
        )
    text = results_markdown(found)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text, end="")
    print(f"\nWrote {args.output} ({len(found)} runs).", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
