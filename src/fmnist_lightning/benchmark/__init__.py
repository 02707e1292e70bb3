"""Measure how fast the project trains and evaluates, and where the time goes.

    python -m fmnist_lightning.benchmark                  # the default config on the real data
    python -m fmnist_lightning.benchmark --quick --synthetic --output bench.json
    python -m fmnist_lightning.benchmark --precision 32-true --memory-format contiguous
    python -m fmnist_lightning.benchmark --compile --no-epoch --no-baseline
    python -m fmnist_lightning.benchmark --eval-only path/to/last.ckpt    # inference speed
    python -m fmnist_lightning.benchmark model.net.dropout=0.3     # trailing Hydra overrides

Every figure runs the project's own pieces: the training config composed by
``config.compose`` with ``debug=benchmark``, and the data module, LightningModule and
Trainer of ``training.builders``. Each is a median over repeated windows of ``--steps``
steps after ``--warmup`` steps. It prints a table and writes JSON holding:

1. ``train``: images/s through the Trainer, and through a plain PyTorch loop over the
   module's own ``training_step`` and the same batches (their ratio is Lightning's cost);
2. ``data_wait``: the share of step time spent outside the training step (fetching the next
   batch plus the loop's own bookkeeping: an upper bound on waiting for data);
3. ``eval``: evaluation images/s on the test set through ``Trainer.test``;
4. ``memory``: peak resident memory (and GPU memory);
5. ``flops``: achieved training FLOP/s, from the FLOPs of one training step that
   ``torch.utils.flop_counter.FlopCounterMode`` counts, against the measured peak of a
   large matrix product in the same precision;
6. ``epoch`` and ``baseline``: the time of one whole epoch (train + validation) of the
   config, and the textbook baseline: torchvision dataset + ``ToTensor`` + ``DataLoader``
   workers, batch size 32, fp32, Adam;
7. ``environment``: ``torch.utils.collect_env.get_env_info()`` in full (``collect_env``),
   with the device, thread counts and library versions of this process beside it.

``--eval-only CKPT`` times the inference path instead (``inference.batches
.predict_probabilities``, what ``evaluate`` runs) over the test set, per precision, with
wall and CPU seconds, accuracy and the agreement between precisions (key ``eval_only``).
The keys changed since release 0.1.0 are listed in docs/performance.md.
"""

from fmnist_lightning.benchmark.cli import main

__all__ = ["main"]
