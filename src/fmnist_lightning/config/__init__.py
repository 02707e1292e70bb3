"""The Hydra configs of conf/: where they live, their resolvers, composing and checking them,
and a resumed run's config.

Below ``training``: it may use ``analysis``, ``inference``, ``models`` and ``data``, and
knows nothing of training, the search or the entry points.
"""
