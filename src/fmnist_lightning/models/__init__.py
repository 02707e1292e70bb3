"""The networks, the LightningModule around them, and how checkpoints of them are read.

Knows nothing of the data files, training runs, analysis, inference or the config: all it
builds comes from plain arguments (a checkpoint's hyperparameters are plain dicts too)."""
