"""One folder per run: a fresh run never writes into another run's folder, holds a lock on
its own, and a run refused before it starts leaves nothing behind. And Hydra's multiruns."""

import atexit
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning import Trainer
from omegaconf import DictConfig

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.schema import RunFolderError
from fmnist_lightning.errors import Failed
from fmnist_lightning.inference.output_files import TEMPORARY_SUFFIX
from fmnist_lightning.training.faults import resume_command

HYDRA_FILES = (".hydra", "*.log")  # written before the run starts
# And a config from an attempt that failed before training; anything else is a run's work.
FRESH_RUN_LEFTOVERS = (*HYDRA_FILES, run_files.LOCK_FILE, run_files.CONFIG_YAML)


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    if resuming or not run_dir.is_dir():
        return
    work = [e for e in run_dir.iterdir() if not any(map(e.match, FRESH_RUN_LEFTOVERS))]
    found = sorted(e.name + ("/" if e.is_dir() else "") for e in work)
    if found:
        raise RunFolderError(
            f"The run folder '{run_dir}' already holds a run ({', '.join(found[:5])}). Leave "
            f"paths.run_dir unset for a new run, or continue this one: {resume_command(run_dir)}"
        )


@contextmanager
def claim_run_dir(run_dir: Path, resuming: bool, lock: bool = True) -> Iterator[None]:
    """``.lock``: an OS lock, released even if the process is killed (a crashed run never
    blocks its resume). ``lock=False``: DDP ranks other than 0, which write nothing there."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:  # released when the run ends or is refused below
        if lock:
            with nothing_left_if_refused():  # a refused resume keeps no .hydra/resumed-<time>/
                try:
                    held.enter_context(FileLock(run_dir / run_files.LOCK_FILE, timeout=0))
                except Timeout as error:
                    raise RunFolderError(
                        f"The run folder '{run_dir}' is in use by another training process: wait for it, or use another folder."
                    ) from error
                check_run_dir(run_dir, resuming)  # another process may have finished a run since
            # Saves a killed process never finished (no other process saves here: the lock).
            for path in (run_dir / run_files.CHECKPOINT_DIR).glob(f".*.ckpt.*{TEMPORARY_SUFFIX}"):
                path.unlink()
        yield


@contextmanager
def nothing_left_if_refused() -> Iterator[None]:
    """A run refused in the block leaves no folder, nor a resume's ``.hydra/resumed-<time>/``;
    outside the command line and in a multirun (whose job folders record failures), no effect."""
    try:
        yield
    except BaseException:
        if HydraConfig.initialized() and not in_multirun():
            hydra = HydraConfig.get()
            output = Path(hydra.runtime.output_dir)
            files = output / str(hydra.output_subdir or ".hydra")
            if files.parent.name == ".hydra" and files.name.startswith("resumed-"):
                shutil.rmtree(files, ignore_errors=True)
                if files.parent.is_dir() and not any(files.parent.iterdir()):
                    files.parent.rmdir()  # made for this resume alone (a run composed in Python)
            # A folder holding more than Hydra's files is not this command's to delete.
            elif output.is_dir() and all(any(map(e.match, HYDRA_FILES)) for e in output.iterdir()):
                shutil.rmtree(output, ignore_errors=True)
        raise


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def refuse_ddp_in_multirun(trainer: Trainer) -> None:
    # A single-device strategy has no cluster_environment.
    environment = getattr(trainer.strategy, "cluster_environment", None)
    external = environment is not None and environment.creates_processes_externally
    # Lightning re-launches the command line once per rank: each rank would run the whole sweep.
    if trainer.world_size > 1 and not external and in_multirun():
        raise Failed(
            f"DDP with {trainer.world_size} processes started by Lightning cannot run inside a Hydra multirun (-m). "
            "Run it as a single run, or sweep on SLURM (hydra/launcher=slurm, see docs/sweeps-and-ddp.md)."
        )


class SweepSummary(Callback):
    """Hydra's callback (conf/hydra/default.yaml): in a multirun, each job's job.json and the
    sweep's summary (``training.sweep_summary``). When a job raises, Hydra skips
    ``on_multirun_end``: so the summary is also written at interpreter exit."""

    _sweep_dir: Path | None = None  # set in a multirun

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._sweep_dir = Path(config.hydra.sweep.dir)
        atexit.register(self.on_multirun_end, config)  # Hydra may skip it (see above)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._sweep_dir is not None and self._sweep_dir.is_dir():
            # Imported here, as below: multiruns only (the startup cost of a plain run).
            from fmnist_lightning.training.sweep_summary import write_sweep_summary

            write_sweep_summary(self._sweep_dir)
        self._sweep_dir = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._job_started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if in_multirun():
            from fmnist_lightning.training.sweep_summary import write_job_json

            write_job_json(job_return, time.perf_counter() - self._job_started)
