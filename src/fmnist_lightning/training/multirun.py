"""Guards for Hydra multiruns (sweeps): whether one is running, and DDP inside one."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning import Trainer

from fmnist_lightning.errors import Failed


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def refuse_ddp_in_multirun(trainer: Trainer) -> None:
    """Lightning starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir`` set, which
    in a multirun repeats the whole sweep in every rank. Ranks that a cluster scheduler starts
    (SLURM, torchrun) are fine."""
    # A single-device strategy has no cluster_environment.
    environment = getattr(trainer.strategy, "cluster_environment", None)
    external = environment is not None and environment.creates_processes_externally
    if trainer.world_size > 1 and not external and in_multirun():
        raise Failed(
            f"DDP with {trainer.world_size} processes started by Lightning cannot run inside a "
            "Hydra multirun (-m): Lightning re-launches the command line for each rank, which "
            "would repeat the whole sweep. Run each DDP configuration as a single run (no -m), "
            "or sweep on SLURM with hydra/launcher=slurm and hydra.launcher.tasks_per_node equal "
            "to trainer.devices, so that SLURM starts the ranks."
        )
