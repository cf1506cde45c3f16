"""Typed command-line arguments for every CLI edge of the project (ballotbox/, biometrics/cli.py).

A bad value is refused while the command line is read, before anything runs or is written: one line that
names the argument, the value and what to give instead (exit 2, firmware.errors). The types are argparse
`type=` callables; `OneLineParser` prints argparse's own refusals as one line too, not a usage block.

    p.add_argument("--dpi", type=number(50, 1200, unit="dpi"))
    p.add_argument("--out", type=output_file("the PNG to write"))
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from firmware.errors import EXIT_BAD_INPUT


class OneLineParser(argparse.ArgumentParser):
    """argparse, whose refusals are one line on stderr ("PROG: argument --x: ...; see PROG --help"), exit 2.
    Subcommands inherit it (argparse makes sub-parsers of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def whole(low: int, high: int | None = None, unit: str = "") -> Callable[[str], int]:
    """A whole number from low to high (or at least low)."""
    wanted = f"{low} to {high}" if high is not None else f"{low} or more"
    unit_words = f" {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give {wanted}{unit_words}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value}: give {wanted}{unit_words}")
        return value

    parse.__name__ = "whole number"
    return parse


def number(low: float, high: float | None = None, unit: str = "", *, above: bool = False) -> Callable[[str], float]:
    """A finite number from low (or above low, with `above`) to high."""
    if above:
        wanted = f"more than {low:g}" + (f", up to {high:g}" if high is not None else "")
    else:
        wanted = f"{low:g} to {high:g}" if high is not None else f"{low:g} or more"
    unit_words = f" {unit}" if unit else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {wanted}{unit_words}") from None
        if not math.isfinite(value) or value < low or (above and value == low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text}: give {wanted}{unit_words}")
        return value

    parse.__name__ = "number"
    return parse


def input_file(what: str) -> Callable[[str], Path]:
    """An existing, readable file (not a folder)."""
    def parse(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a folder; give {what}")
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text}: no such file; give {what}")
        if not os.access(path, os.R_OK):
            raise argparse.ArgumentTypeError(f"{text}: cannot be read (permissions); give {what} you may read")
        return path

    parse.__name__ = "file"
    return parse


def input_dir(what: str) -> Callable[[str], Path]:
    """An existing folder."""
    def parse(text: str) -> Path:
        path = Path(text)
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a file, not a folder; give {what}")
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: no such folder; give {what}")
        return path

    parse.__name__ = "folder"
    return parse


def output_file(what: str) -> Callable[[str], Path]:
    """A file to write: not a folder, and its folder (made if missing) not a file."""
    def parse(text: str) -> Path:
        path = Path(text)
        if path.is_dir() or text.endswith(("/", os.sep)):
            raise argparse.ArgumentTypeError(f"{text}: is a folder; give the file name of {what} "
                                             f"(e.g. {path / 'name'}{_suffix(what)})")
        _writable_place(text, path.parent, what)
        return path

    parse.__name__ = "file"
    return parse


def output_dir(what: str) -> Callable[[str], Path]:
    """A folder to write into (made if missing): not a file, and not inside one."""
    def parse(text: str) -> Path:
        path = Path(text)
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a file, not a directory; give a directory for {what}")
        _writable_place(text, path, what)
        return path

    parse.__name__ = "folder"
    return parse


def check_output_file(option: str, path: Path, what: str) -> None:
    """The check of output_file() for a path that did not come through argparse: raises UserError."""
    from firmware.errors import UserError

    try:
        output_file(what)(str(path))
    except argparse.ArgumentTypeError as exc:
        raise UserError(f"{option} {exc}") from None


def _writable_place(text: str, folder: Path, what: str) -> None:
    """The nearest existing ancestor of `folder` must be a folder we may write in."""
    here = folder
    while not here.exists() and here != here.parent:
        here = here.parent
    if here.exists() and not here.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {here} is a file, not a directory; give a path in a directory for {what}")
    if here.is_dir() and not os.access(here, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: the folder {here} cannot be written (permissions); give another "
                                         f"place for {what}")


def _suffix(what: str) -> str:
    for word, suffix in (("PNG", ".png"), ("PDF", ".pdf"), ("JSON", ".json"), ("CSV", ".csv")):
        if word in what:
            return suffix
    return ""
