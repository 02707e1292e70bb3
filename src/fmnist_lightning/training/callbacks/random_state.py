"""RNG states in every checkpoint, so that a resumed run draws the same random numbers."""

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RandomState(Callback):
    """As tensors and plain lists, so that checkpoints load with ``weights_only=True``; restored
    at ``on_train_start``, after the sanity check, which draws random numbers too."""

    _pending: dict[str, Any] | None = None  # the state loaded from a checkpoint

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        version, python_state, python_gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "python": [version, list(python_state), python_gauss],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, python_state, python_gauss = state["python"]
        random.setstate((version, tuple(python_state), python_gauss))
