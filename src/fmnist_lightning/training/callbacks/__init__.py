"""Lightning callbacks of a training run, listed in conf/callbacks/default.yaml."""

import lightning as L


def is_logging_step(trainer: L.Trainer) -> bool:
    """The steps where Lightning reads logged values back from the device anyway (a GPU sync),
    so a callback may too (for ``on_train_batch_end``)."""
    every = trainer.log_every_n_steps
    return every > 0 and trainer.global_step % every == 0
