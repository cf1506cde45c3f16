"""The simulator's physical world of a day in a state directory, kept so that it survives `kill -9`.

Everything physical is journaled here - where each sheet is (in a voter's hand, at the entry, held at
the imaging position, pushed back out, in the box), what each voter has done and chosen, the clock,
the paper that came out of the printer, the committee's steps - as one JSON line per event, written
with a single write() before the change takes effect (write-ahead). A process killed at any instant
leaves a journal whose last complete line is the world as it then was; a torn last line is an event
that did not happen. The firmware's own storage (store, key, outbox) is kept apart, in DIR/device/,
and the firmware never reads this.

Durability is against a killed process (the page cache survives it), not against the host's own power
loss: the journal is not fsync'd, the device's store is (synchronous=FULL).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"
DAY_FILE = "day.json"  # the day's parameters, written once before the day starts


class WorldError(RuntimeError):
    """A state directory whose world cannot be read back; the message says what to do."""


class Journal:
    """Append-only, one write() per event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, event: dict[str, Any]) -> None:
        os.write(self._fd, json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class World:
    """The world replayed from a journal."""

    t: float = 0.0  # simulated seconds since the day's clock started (the last event's time)
    at_entry: str | None = None
    held: str | None = None
    returned: str | None = None
    box: list[str] = field(default_factory=list)  # sheet keys in the physical box, in the order they fell
    committee: list[str] = field(default_factory=list)  # the committee's steps done
    sheets: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (voter, ballot) -> sheets handed out
    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)  # sheet key -> its attempt_end
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)  # sheet key -> last choice since its feed
    ballots: dict[tuple[int, int], str] = field(default_factory=dict)  # finished ballots -> cast | given_up
    voters_done: int = 0
    stats: Counter[str] = field(default_factory=Counter)
    printed: list[str] = field(default_factory=list)
    boots: int = 0
    torn: bool = False  # the last line was cut off by the kill

    @property
    def in_path(self) -> list[str]:
        return [k for k in (self.at_entry, self.held, self.returned) if k is not None]


def replay(path: Path) -> World:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return World()
    except OSError as exc:
        raise WorldError(f"{path}: cannot read the world journal ({exc}); check the state directory") from None
    world = World()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # no newline: the write was cut off by the kill; it did not happen
        world.torn = True
    for n, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except ValueError:
            raise WorldError(f"{path}: line {n} is not a journal event; the state directory was altered or "
                             "the disk is damaged: start a new day in another directory") from None
        _apply(world, event)
    return world


def _apply(w: World, ev: dict[str, Any]) -> None:
    w.t = max(w.t, float(ev.get("t", 0.0)))
    kind = ev["e"]
    if kind == "path":
        w.at_entry, w.held, w.returned = ev["at_entry"], ev["held"], ev["returned"]
        if ev.get("dropped"):
            w.box.append(ev["dropped"])
        for key in (w.at_entry,):
            if key is not None:
                w.choices.pop(key, None)  # a new insertion: the voter decides again
    elif kind == "sheet":
        w.sheets.setdefault((ev["voter"], ev["ballot"]), []).append(ev["key"])
    elif kind == "choice":
        w.choices[ev["key"]] = ev
    elif kind == "attempt_end":
        w.attempts[ev["key"]] = ev
    elif kind == "ballot_end":
        w.ballots[(ev["voter"], ev["ballot"])] = ev["result"]
    elif kind == "voter_end":
        w.voters_done = max(w.voters_done, ev["voter"] + 1)
    elif kind == "stat":
        w.stats[ev["k"]] += ev.get("n", 1)
    elif kind == "committee":
        w.committee.append(ev["step"])
    elif kind == "printed":
        w.printed.append(ev["what"])
    elif kind == "boot":
        w.boots += 1
    elif kind == "clock":
        pass  # station time passed (its "t"): the room camera records only time the journal holds
    else:
        raise WorldError(f"journal event {kind!r} is unknown to this simulator version; resume the day with the "
                         "version that started it")


def write_day_file(world_dir: Path, params: dict[str, Any]) -> None:
    tmp = world_dir / (DAY_FILE + ".tmp")
    tmp.write_text(json.dumps(params, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, world_dir / DAY_FILE)


def read_day_file(world_dir: Path) -> dict[str, Any]:
    path = world_dir / DAY_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise WorldError(f"{path}: no day was started in this state directory (nothing to resume); start one "
                         "with `ballotbox simulate --state-dir DIR --out OUT` without --resume") from None
    except (OSError, ValueError) as exc:
        raise WorldError(f"{path}: unreadable ({exc}); the state directory was altered: start a new day in "
                         "another directory") from None
