"""Predictions from a trained checkpoint: image files to pixels, pixels to probabilities.

May use ``models`` (the module and how it runs) and ``data`` (the normalisation training
used); knows nothing of training runs, their analysis or the config.
"""
