"""Named points in the firmware where a test or the power-cut bench may stop the process.

The firmware calls ``hit(name)`` at every state of the ballot table and on both sides of every store
commit. With no handler installed (the box in service) a hit costs one global lookup and does nothing.
``ballotbox bench power-cut`` installs a handler in a child process that records the point it is at
and, at the chosen point, stops the process so that the parent kills it with SIGKILL there: a real
power cut, at a known place, on a real process.
"""

from __future__ import annotations

from collections.abc import Callable

_handler: Callable[[str], None] | None = None


def hit(name: str) -> None:
    if _handler is not None:
        _handler(name)


def install(handler: Callable[[str], None] | None) -> None:
    """Set (or, with None, remove) the process's handler."""
    global _handler
    _handler = handler
