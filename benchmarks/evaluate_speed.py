"""How long evaluation's forward passes take over the 10,000 test images.

    FMNIST_DATA_DIR=/path/to/data python benchmarks/evaluate_speed.py CHECKPOINT [--repeats 3]

Prints, per precision, the median wall time and process CPU time of
``inference.batches.predict_probabilities`` (what ``fmnist_lightning.evaluate`` runs), and the
agreement of the bf16 predictions with the fp32 ones. On a shared machine the wall time
depends on the other load; CPU time divided by the thread count is what an idle machine takes.
"""

import argparse
import os
import statistics
import time

import torch

from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.models.module import load_module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    module = load_module(args.checkpoint)
    datamodule = FashionMNISTDataModule(
        root=os.environ.get("FMNIST_DATA_DIR", "data"),
        batch_size=128,
        eval_batch_size=args.batch_size,
        val_fraction=0.2,
        split_seed=0,
        shuffle_seed=0,
        mean=module.hparams.mean,
        std=module.hparams.std,
        download=False,
        on_device=False,
    )
    datamodule.setup("test")
    images, labels = datamodule.tensors["test"].tensors
    print(
        f"{len(images):,} images, batch size {args.batch_size}, {torch.get_num_threads()} threads"
    )
    predictions = {}
    for precision in ("32-true", "bf16-mixed"):
        predict_probabilities(module, images[:1000], args.batch_size, precision)  # warm-up
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            probabilities = predict_probabilities(module, images, args.batch_size, precision)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        predictions[precision] = probabilities.argmax(dim=1)
        accuracy = (predictions[precision] == labels).float().mean().item()
        print(
            f"{precision:>10}: wall {statistics.median(walls):6.2f} s   "
            f"cpu {statistics.median(cpus):6.2f} s   "
            f"{len(images) / statistics.median(walls):7,.0f} images/s   accuracy {accuracy:.4f}"
        )
    same = (predictions["32-true"] == predictions["bf16-mixed"]).float().mean().item()
    print(f"bf16 and fp32 predict the same class for {same:.2%} of the images")


if __name__ == "__main__":
    main()
