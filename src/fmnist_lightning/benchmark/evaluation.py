"""Evaluation speed: ``Trainer.test`` after training, and a checkpoint's inference path alone."""

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from fmnist_lightning.benchmark.training import TrainerRun
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.models.module import FashionMNISTModule

# What `--eval-only` compares when --precision is not given: fp32, and bf16 autocast
# (native on CPUs with AVX-512 BF16 or AMX and on recent GPUs, emulated and slow elsewhere).
EVAL_ONLY_PRECISIONS = ("32-true", "bf16-mixed")


def trainer_test(run: TrainerRun, repeats: int) -> int:
    """``Trainer.test`` on the test set once to warm up, then ``repeats`` timed times.

    The run's StepTimer records each test epoch; the warm-up one is dropped. Returns the
    number of test images.
    """
    for _ in range(repeats + 1):
        run.trainer.test(run.module, datamodule=run.datamodule, verbose=False)
    del run.timer.test_seconds[0]
    return len(run.datamodule.tensors["test"])


def timed_inference(
    module: FashionMNISTModule, images: torch.Tensor, batch_size: int, precision: str, repeats: int
) -> tuple[torch.Tensor, list[float], list[float]]:
    """Probabilities of ``images`` and the wall and process-CPU seconds of each of ``repeats`` passes.

    Runs ``inference.batches.predict_probabilities``, what ``evaluate`` and ``Classifier``
    run, after one warm-up batch. Its outputs come back to the CPU, so no extra sync is needed.
    """
    predict_probabilities(module, images[:batch_size], batch_size, precision)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        probabilities = predict_probabilities(module, images, batch_size, precision)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return probabilities, walls, cpus


def inference_speed(
    module: FashionMNISTModule,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    precisions: Sequence[str],
    repeats: int,
) -> dict[str, Any]:
    """Per precision: median wall and CPU seconds over the images, images/s, accuracy, and the
    share of images whose predicted class agrees with the first (reference) precision's.

    On a shared machine the wall time depends on the other load; CPU seconds divided by the
    thread count is what an idle machine would take.
    """
    by_precision: dict[str, Any] = {}
    reference = None
    for precision in precisions:
        probabilities, walls, cpus = timed_inference(module, images, batch_size, precision, repeats)
        predicted = probabilities.argmax(dim=1)
        reference = predicted if reference is None else reference
        wall = statistics.median(walls)
        by_precision[precision] = {
            "wall_seconds": wall,
            "cpu_seconds": statistics.median(cpus),
            "images_per_s": len(images) / wall,
            "accuracy": (predicted == labels.cpu()).float().mean().item(),
            "agreement": (predicted == reference).float().mean().item(),
            "window_seconds": walls,
        }
    return {"reference_precision": precisions[0], "by_precision": by_precision}
