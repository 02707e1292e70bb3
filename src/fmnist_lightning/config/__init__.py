"""The Hydra configs of conf/: where they live, their resolvers, composing and checking them.

Sits just below the entry points: it may use ``training``, ``models`` and ``data``.
"""
