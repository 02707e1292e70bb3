"""Predictions from a trained checkpoint: image files to pixels, pixels to probabilities. Uses
``models`` and ``data`` only; knows nothing of training runs, their analysis or the config."""
