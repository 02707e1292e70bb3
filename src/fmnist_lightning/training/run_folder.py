"""One folder per run: a fresh run never writes into another run's folder, holds a lock on
its own, and a run refused before it starts leaves nothing behind."""

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.resume import RunFolderError
from fmnist_lightning.training.checkpoint_io import remove_stale_temporaries
from fmnist_lightning.training.faults import resume_command
from fmnist_lightning.training.multirun import in_multirun

# What Hydra writes into a run folder before the run starts.
HYDRA_FILES = (".hydra", "*.log")
# What a fresh run may find in its folder: Hydra's files, and a config from an attempt that
# failed before training (bad data, bad config). Anything else is an earlier run's work.
FRESH_RUN_LEFTOVERS = (*HYDRA_FILES, ".lock", run_files.CONFIG_YAML)


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """Refuse to start a fresh run in a folder that holds another run's results."""
    if resuming or not run_dir.is_dir():
        return
    found = sorted(
        entry.name + ("/" if entry.is_dir() else "")
        for entry in run_dir.iterdir()
        if not any(entry.match(pattern) for pattern in FRESH_RUN_LEFTOVERS)
    )
    if found:
        raise RunFolderError(
            f"The run folder '{run_dir}' already holds a run ({', '.join(found[:5])}). A new run "
            f"never writes into an existing one. To continue that run: {resume_command(run_dir)} "
            "To start a new run, leave paths.run_dir unset (every run gets a new folder) or "
            "choose an empty folder."
        )


@contextmanager
def claim_run_dir(run_dir: Path, resuming: bool, lock: bool = True) -> Iterator[None]:
    """Check the folder, and hold an exclusive lock on it (``.lock``, an OS lock, released
    even if the process is killed: a crashed run never blocks its resume) while the run
    writes there. ``lock=False`` (DDP ranks other than 0, which write nothing there): no lock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if not lock:
        yield
        return
    with ExitStack() as held:  # released when the run ends or is refused below
        with nothing_left_if_refused():  # a refused resume keeps no .hydra/resumed-<time>/
            try:
                held.enter_context(FileLock(run_dir / ".lock", timeout=0))
            except Timeout as error:
                raise RunFolderError(
                    f"The run folder '{run_dir}' is in use by another training process. Wait "
                    "for it to finish, or start a new run in another folder."
                ) from error
            check_run_dir(run_dir, resuming)  # another process may have finished a run meanwhile
        remove_stale_temporaries(run_dir / run_files.CHECKPOINT_DIR)  # a killed save's file
        yield


@contextmanager
def nothing_left_if_refused() -> Iterator[None]:
    """A run stopped by an error inside the block (before training starts) leaves no folder
    behind, nor a resume's Hydra files (``.hydra/resumed-<time>/``) in the run it would have
    continued. Outside the command line and in a multirun (whose job folders record
    failures), nothing is removed."""
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
            elif output.is_dir() and all(  # else not this command's to delete
                any(entry.match(p) for p in HYDRA_FILES) for entry in output.iterdir()
            ):
                shutil.rmtree(output, ignore_errors=True)
        raise
