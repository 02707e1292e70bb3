"""Everything a training run needs around the Trainer: builders, callbacks, faults, resume.

May use ``config``, ``analysis``, ``inference``, ``models`` and ``data``; knows nothing of
the search or the entry points.
"""
