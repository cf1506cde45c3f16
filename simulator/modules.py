"""Twins that stand in for a hardware library (RPi.GPIO, picamera2): their modules put in sys.modules for a
block, so that a driver's lazy `import` inside it gets the twin, and whatever was there before comes back."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def installed_modules(modules: Mapping[str, types.ModuleType]) -> Iterator[None]:
    """`modules` (name -> module) in sys.modules for the block; then each name as it was (a real library on
    a Pi, or nothing)."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
