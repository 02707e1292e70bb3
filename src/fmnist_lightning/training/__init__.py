"""Everything a training run needs around the Trainer. May use ``config``, ``analysis``,
``inference``, ``models`` and ``data``; knows nothing of the search or the entry points."""
