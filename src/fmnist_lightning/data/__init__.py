"""Fashion-MNIST on disk and in memory: IDX file checks, the DataModule, batch augmentation.

This package knows nothing of the rest of the project (networks, training, analysis): it
turns four IDX files into normalised tensors and batches.
"""
