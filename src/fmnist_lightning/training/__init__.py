"""Everything a training run needs around the Trainer: builders, callbacks, faults, resume.

May use ``analysis``, ``inference``, ``models`` and ``data``; knows nothing of the config
package (it gets composed configs) or the entry points.
"""
