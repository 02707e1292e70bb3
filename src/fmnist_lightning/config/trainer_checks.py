"""Checks of the trainer part of a training config, made before any work: a validation
schedule that would leave the last epochs of a run unvalidated."""

from typing import Any

__all__ = ["validation_schedule_problem"]


def validation_schedule_problem(config: dict[str, Any]) -> str | None:
    """Why ``trainer.check_val_every_n_epoch`` would skip the run's last epochs, or None.

    Lightning validates after every n-th epoch and adds no validation after the last one:
    with n = 2 and 3 epochs, the checkpoint chosen on ``val_acc`` and tested could never
    come from the third epoch, and its time to accuracy would not be measured.
    """
    trainer = config.get("trainer") or {}
    every, epochs = trainer.get("check_val_every_n_epoch"), trainer.get("max_epochs")
    if trainer.get("fast_dev_run") or not isinstance(every, int) or not isinstance(epochs, int):
        return None  # fast_dev_run validates its one epoch; the schema reports non-integers
    if every < 1 or epochs < 1 or epochs % every == 0:
        return None  # the schema reports values out of range
    return (
        f"trainer.check_val_every_n_epoch={every} does not divide trainer.max_epochs={epochs}: "
        f"the last {epochs % every} epoch(s) would never be validated, so neither the tested "
        f"checkpoint nor the time to accuracy could come from them; set trainer.max_epochs "
        f"to a multiple of {every}, or trainer.check_val_every_n_epoch=1"
    )
