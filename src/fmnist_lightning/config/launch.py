"""Which launch a process belongs to when torchrun or SLURM starts every rank of a run:
each rank composes its own config, so the run folder must be a name all compute alike.
"""

import os


def launch_name() -> str | None:
    """``torchrun-<rdzv id>`` or ``slurm-<job>.<step>`` in a launch of several ranks, else None."""
    if (run := os.environ.get("TORCHELASTIC_RUN_ID")) and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return f"torchrun-{run}"
    if (job := os.environ.get("SLURM_JOB_ID")) and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        step = os.environ.get("SLURM_STEP_ID")
        return f"slurm-{job}" + (f".{step}" if step else "")
    return None


def launch_rank() -> int:
    """This process's rank, as Lightning reads it: torchrun's RANK, the LOCAL_RANK of the
    processes Lightning starts itself, srun's SLURM_PROCID; 0 for a process alone."""
    names = ("RANK", "LOCAL_RANK", "SLURM_PROCID")
    return int(next((os.environ[name] for name in names if name in os.environ), 0))


def run_name(default: str) -> str:
    """Resolver ``${launch_run_name:<default>}``: the launch's name, else ``default``."""
    return launch_name() or default


def rank_zero_only(value: object) -> object:
    """Resolver ``${launch_rank_zero:<value>}``: ``value`` on rank 0, None (nothing) on the others."""
    return value if launch_rank() == 0 else None


def rank_suffix() -> str:
    """Resolver ``${launch_rank_suffix:}``: ``""`` on rank 0, ``_rank<N>`` on the others."""
    return f"_rank{rank}" if (rank := launch_rank()) else ""
