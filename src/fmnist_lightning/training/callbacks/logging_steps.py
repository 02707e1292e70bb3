"""The training steps at which a callback may read tensors back from the device.

On a GPU every read (``.item()``, ``bool()``, ``float()``, ``.cpu()``) waits for the queued
work, so a callback that reads after every step keeps the GPU from running ahead. Lightning
reads the logged step values at its logging steps anyway; callbacks read there too.
"""

import lightning as L


def is_logging_step(trainer: L.Trainer) -> bool:
    """Lightning writes the logged step values after this batch (every
    ``trainer.log_every_n_steps`` optimiser steps). For ``on_train_batch_end``, which runs
    after the batch's optimiser step."""
    every = trainer.log_every_n_steps
    return every > 0 and trainer.global_step % every == 0
