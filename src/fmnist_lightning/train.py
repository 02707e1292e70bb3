"""Train a network on Fashion-MNIST, then test its best checkpoint.

python -m fmnist_lightning.train [hydra overrides, e.g. model.net.dropout=0.3]
"""

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning import cli
from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.resolvers import register_resolvers
from fmnist_lightning.config.schema import ConfigValidationError, validate_config
from fmnist_lightning.errors import FmnistError, UsageError
from fmnist_lightning.training import builders, run_folder
from fmnist_lightning.training.callbacks.run_summary import run_summary_of
from fmnist_lightning.training.callbacks.time_to_accuracy import time_to_accuracy_line
from fmnist_lightning.training.faults import explain_training_faults
from fmnist_lightning.training.machine import keep_freed_memory

register_resolvers()


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Fit, test the best checkpoint; return the run's summary (test_metrics.json).
    ``callbacks``: added to ``cfg.callbacks`` by a caller (the search's pruning callback)."""
    with run_folder.nothing_left_if_refused():  # a run refused here leaves no run folder behind
        if cfg.get("resume") or cfg.get("ckpt_path"):
            # Imported here: a fresh run needs none of it (the startup cost of a plain run).
            from fmnist_lightning.config.resume import config_to_run

            cfg = config_to_run(cfg)  # a resumed run continues with its saved settings
        cfg = builders.finalise(cfg)  # trainer.precision: auto becomes what runs here
        validate_config(cfg)  # bad values stop here, before any data is read
        start, extra_callbacks = None, []
        if cfg.get("ckpt_path"):  # resume= sets it too: checked before Lightning reads it
            from fmnist_lightning.training import resume

            start, extra_callbacks = resume.starting_checkpoint(cfg)
        run_dir, resuming = Path(cfg.paths.run_dir), bool(cfg.get("resume"))
        run_folder.check_run_dir(run_dir, resuming)  # never write into another run's folder
        L.seed_everything(cfg.seed, workers=True)
        keep_freed_memory()  # a step's activations reuse the last step's memory: ~20% faster

        datamodule = builders.build_datamodule(cfg)
        datamodule.prepare_data()  # fail on missing data before building anything else
        module = builders.build_module(cfg, datamodule.classes)
        teacher = None
        if cfg.get("distill"):  # imported here too: a plain run needs none of it
            from fmnist_lightning.training.distillation import TeacherOncePerImage, build_teacher

            module.teacher, teacher = build_teacher(cfg, module)
            extra_callbacks.append(TeacherOncePerImage())
        trainer = builders.build_trainer(cfg, [*callbacks, *extra_callbacks])
    # The folder is locked while this process writes there; Ctrl-C, SIGTERM, a NaN loss or
    # running out of memory become a Stopped error with a clear message.
    claim = run_folder.claim_run_dir(run_dir, resuming, lock=trainer.is_global_zero)
    with claim, explain_training_faults(trainer, run_dir, cfg.data):
        if trainer.is_global_zero:
            if resuming:
                resume.rewind_run_folder(run_dir, start)  # metrics.csv as at the checkpoint
            OmegaConf.save(cfg, run_dir / run_files.CONFIG_YAML, resolve=True)
            if teacher:  # read by results while the run trains, and by its resume
                run_files.write_json(run_dir / run_files.TEACHER_JSON, teacher)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        # The best file by path: "best" would warn, as there are two ModelCheckpoints.
        best = trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path
        (test,) = trainer.test(module, datamodule=datamodule, ckpt_path=best or None)

    summary = run_summary_of(trainer) or test
    if trainer.is_global_zero:  # last, so that it is the line a user sees at the end
        print(f"\n{time_to_accuracy_line(summary)}")
        print(f"Test accuracy: {summary['test_acc']:.4f}   Run folder: {run_dir.resolve()}")
    return summary


STARTED = []  # main() was reached: an error before it is Hydra's, composing the config
REFUSED: list[FmnistError] = []  # what stopped a single run, raised again by command()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    STARTED.append(True)
    try:
        with run_folder.nothing_left_if_refused():
            if cfg.get("hparams_search") is not None:
                search = f"python -m fmnist_lightning.search {' '.join(sys.argv[1:])}"
                raise UsageError(f"hparams_search is a search space: run {search}")
        summary = train(cfg)
    except FmnistError as error:
        # A multirun records the job as failed (HYDRA_FULL_ERROR re-raises it to cli.run); a
        # single run returns, so that Hydra adds no line of its own to the one cli.run prints.
        if run_folder.in_multirun():
            raise
        REFUSED.append(error)
        return None
    # The value a Hydra sweeper would optimise (the search command uses train() itself).
    return summary.get(cfg.objective)


def command() -> None:
    # Call the imported module's main(), not this __main__ copy's: launchers that pickle
    # the task function for other processes (joblib) can then send it by reference.
    import fmnist_lightning.train as imported

    try:
        imported.main()
    except Exception as error:
        if imported.STARTED or isinstance(error, FmnistError):
            raise  # a bug (its traceback), or a refusal (cli.run prints it)
        # Imported here: only a config that Hydra refused needs explaining.
        from fmnist_lightning.config.messages import refusal

        raise ConfigValidationError(refusal(error, "train", sys.argv[1:])) from error
    if imported.REFUSED:
        raise imported.REFUSED[0]


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    cli.run(command)
