"""Lightning callbacks of a training run, one per module, listed in conf/callbacks/default.yaml."""

import lightning as L


def is_logging_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes the logged step values after this batch (for
    ``on_train_batch_end``): the steps where a callback may read tensors back from the device.
    On a GPU every read waits for the queued work; Lightning reads there anyway."""
    every = trainer.log_every_n_steps
    return every > 0 and trainer.global_step % every == 0
