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
   module's own ``training_step`` and the same batches in this process (their ratio is the
   framework's overhead; since 0.2.0 the loop runs the module's step, metrics included,
   instead of a copy of its loss);
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

Changed JSON keys since release 0.1.0 (the rest are as they were):

- ``flops.mult_adds_per_image`` (torchinfo's count, biases included) is gone;
  ``flops.forward_flops_per_image`` is torch's count of one forward pass (2 per
  multiply-add, no biases), and ``flops.train_flops_per_image`` is now counted (forward
  + backward) instead of 2 x 3 x the multiply-adds; ``flops.train_flops_by_operator`` is new.
- ``flops.matmul_peak_flops_by_kernel``: ``onednn`` (a private ``torch._C`` call) is now
  ``onednn_conv1x1``, the same product as a public 1x1 convolution, which oneDNN runs.
- ``environment``: ``cpu_count`` and ``cpu_amx`` are gone (``collect_env.cpu_info`` holds
  both); ``python`` and ``platform`` are collect_env's longer strings; ``collect_env`` is new.

Modules: ``cli`` (options, the composed config, the runs and their figures, the JSON file),
``measure`` (timing windows and the runs they time), ``flops`` (FLOPs, the matmul peak, the
environment and memory), ``report`` (the tables).
"""

from fmnist_lightning.benchmark.cli import main

__all__ = ["main"]
