"""What a trained checkpoint gets right and wrong, and what a run folder holds.

May use ``inference`` (predictions), ``models`` and ``data``; knows nothing of training or
the config. ``plots``, ``report`` and ``tables`` are pure (no file or model I/O, no
torch); ``figures`` and ``evaluation`` write the files.
"""
