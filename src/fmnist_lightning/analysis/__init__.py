"""What a trained checkpoint gets right and wrong, and what a run folder holds. Uses
``inference``, ``models`` and ``data``, never training or the config; ``plots``, ``curve_plots``,
``report`` and ``tables`` are pure (no I/O, no torch); ``figures`` and ``evaluation`` write."""
