"""Batches of indices whose order depends only on (seed, epoch), sharded across DDP ranks."""

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[torch.Tensor]):
    """Yields index tensors, one per batch; the shuffle order depends only on (seed, epoch).

    Lightning calls ``set_epoch`` at the start of every epoch, so a run resumed at epoch k
    sees the same batches as one that never stopped. Under DDP each rank takes every
    ``world_size``-th batch of the same order.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> None:
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.device, self.epoch = torch.device(device), 0
        count = size // batch_size if drop_last else -(-size // batch_size)
        self.batches = range(rank, count, world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = (
            torch.randperm(self.size, generator=generator)
            if self.shuffle
            else torch.arange(self.size)
        )
        # One copy per epoch: on a GPU the batches are then sliced on the device.
        order = order.to(self.device)
        for batch in self.batches:
            yield order[batch * self.batch_size : (batch + 1) * self.batch_size]
