"""Test helpers, imported as ``helpers.<module>`` (pytest puts tests/ on sys.path).

- ``helpers.data``: the synthetic IDX files and a small data module over them;
- ``helpers.commands``: a command's ``__main__`` (cli.run) in this process: status, output;
- ``helpers.compose``: the one way tests compose a config (``debug=tiny`` fits);
- ``helpers.faults``: faults on cue (callbacks a run adds with ``+callbacks.x=...``, a full disk);
- ``helpers.recording``: a callable that records its calls (``_target_``s that must never run).
"""
