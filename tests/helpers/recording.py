"""A callable that records every call, for tests that point ``_target_``s at it.

Checkpoint tests put ``{"_target_": TARGET, ...}`` anywhere in a checkpoint's
hyperparameters and then assert that ``CALLS`` stayed empty: loading never called it.
"""

from typing import Any

TARGET = "helpers.recording.record"
CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = []


def record(*args: Any, **kwargs: Any) -> float:
    """Note the call; return a harmless number, so that a build that calls it goes on."""
    CALLS.append((args, kwargs))
    return 0.0
