"""`ballotbox bench power-cut`: kill real processes at many instants of the ballot flow and prove that
no ballot is lost or counted twice.

A parent process loads the code once (a zygote) and forks a child per boot of the box; the child runs
the day in a state directory (simulator.day) and is killed with SIGKILL - a real process, its memory
gone - at a point chosen in one of three ways:

- **point**: at the n-th hit of one named failpoint (firmware.common.failpoints: every action of every
  state of the ballot table, both sides of every store commit); the child stops itself there with
  SIGSTOP and the parent kills it;
- **commit**: while a store COMMIT is running (the parent kills as soon as the child enters one; the
  child marks the commit's end in shared memory, so the bench knows whether the kill landed inside);
- **time**: at a random instant after the box is up, wherever the child happens to be.

The next child boots as after a power cut (`--resume`): the firmware recovers from its store and the
feeder's sensors, and the bench compares, right after that recovery, the ballots counted per style
with the sheets physically in the box (the world's journal): a sheet in the box and not counted is
lost, a count above the box is doubled. Each day ends with the same final check as `simulate`
(tallies vs the box vs the voters' intentions).
"""

from __future__ import annotations

import json
import mmap
import os
import random
import signal
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.election import Election
from firmware.common import failpoints
from firmware.common.i18n import Messages
from firmware.scanner.states import BALLOT_TABLE
from simulator.day import WORLD_DIR, FaultRates, run_day
from simulator.world import JOURNAL, replay

# The paper path misbehaves more often than on a real day, so that the fault states are killed in too.
BENCH_FAULTS = FaultRates(jam_in=0.03, jam_drop=0.03, double=0.02, cover=0.01)
CHILD_TIMEOUT_S = 120.0  # a child that neither finishes nor reaches its point is killed anyway
_SLOT = 96  # bytes of shared memory for the child's last failpoint name


def catalogue() -> list[str]:
    """Every failpoint the ballot flow can hit."""
    names = {f"ballot.{nxt.value}.{action}" for (_, _), (nxt, actions) in BALLOT_TABLE.items() for action in actions}
    return sorted(names | {"store.commit.before", "store.commit.after"})


@dataclass
class _Shared:
    """Memory shared with the child (MAP_SHARED before fork): its last point, whether it is inside a
    commit, and how many points it has passed."""

    buf: mmap.mmap

    def set_point(self, name: str, in_commit: int | None = None) -> None:
        raw = name.encode()[:_SLOT - 1]
        self.buf[8:8 + _SLOT] = raw + bytes(_SLOT - len(raw))
        hits = struct.unpack_from("<I", self.buf, 4)[0] + 1
        struct.pack_into("<I", self.buf, 4, hits)
        if in_commit is not None:
            struct.pack_into("<I", self.buf, 0, in_commit)

    def point(self) -> str:
        return bytes(self.buf[8:8 + _SLOT]).rstrip(b"\0").decode()

    def in_commit(self) -> bool:
        return struct.unpack_from("<I", self.buf, 0)[0] == 1

    def hits(self) -> int:
        return struct.unpack_from("<I", self.buf, 4)[0]

    def reset(self) -> None:
        self.buf[:] = bytes(len(self.buf))


def run(election: Election, runs: int, seed: int, work: Path, *, voters: int = 60,
        progress: Any = None) -> dict[str, Any]:
    rng = random.Random(seed)
    names = catalogue()
    shared = _Shared(mmap.mmap(-1, 8 + _SLOT, flags=mmap.MAP_SHARED))
    messages = Messages.for_language(election.station.language)
    from firmware.cec.ballots import references_for
    references_for(election)  # rendered once in the zygote: each boot of a child finds it ready

    kills: list[dict[str, Any]] = []
    days: list[dict[str, Any]] = []
    started = time.perf_counter()
    day_no = 0
    while len(kills) < runs:
        day_dir = work / f"day-{day_no:03d}"
        if day_dir.exists():
            raise FileExistsError(f"{day_dir}: exists; give an empty --work directory (the bench never deletes)")
        day_seed = rng.randrange(1 << 30)
        boot = 0
        finished = None
        while finished is None:
            plan = _plan(rng, names) if len(kills) < runs else {"mode": "none"}
            outcome = _boot(election, voters, day_seed, day_dir, messages, boot > 0, plan, shared, rng)
            boot += 1
            if outcome["killed"]:
                kills.append({"day": day_no, "boot": boot, **{k: v for k, v in plan.items() if k != "faults"},
                              **outcome})
                if progress:
                    progress(len(kills), runs)
            else:
                finished = outcome
        days.append(_day_summary(day_no, day_dir, finished))
        day_no += 1
    _attach_recoveries(kills, work)
    return _report(kills, days, names, runs, seed, voters, time.perf_counter() - started)


# For a kill in a fault state, the boot makes that fault likely (the day's own rates make them rare).
_FAULT_FOR = {"jammed": FaultRates(jam_in=0.25, jam_drop=0.25, double=0.0, cover=0.0),
              "double_sheet": FaultRates(jam_in=0.0, jam_drop=0.0, double=0.5, cover=0.0),
              "cover_open": FaultRates(jam_in=0.0, jam_drop=0.0, double=0.0, cover=0.5),
              "waiting.resolve_intent": FaultRates(jam_in=0.25, jam_drop=0.25, double=0.0, cover=0.1)}
FALLBACK_BALLOTS = 2  # a point not reached within this many sheets: the child is killed where it is


def _plan(rng: random.Random, names: list[str]) -> dict[str, Any]:
    r = rng.random()
    if r < 0.6:
        target = rng.choice(names)
        faults = next((f for k, f in _FAULT_FOR.items() if f".{k}." in f".{target}."), BENCH_FAULTS)
        return {"mode": "point", "target": target, "nth": rng.randint(1, 2), "faults": faults}
    if r < 0.8:
        return {"mode": "commit", "nth": rng.randint(1, 12), "delay_s": rng.uniform(0.0, 0.004)}
    return {"mode": "time", "after_s": rng.uniform(0.0, 0.8)}


def _boot(election: Election, voters: int, seed: int, day_dir: Path, messages: Messages, resume: bool,
          plan: dict[str, Any], shared: _Shared, rng: random.Random) -> dict[str, Any]:
    shared.reset()
    result_file = day_dir / "bench-result.json"
    pid = os.fork()
    if pid == 0:  # the child: one boot of the box
        code = 1
        try:
            _install_handler(plan, shared)
            result = run_day(election, voters, seed, day_dir, messages, faults=plan.get("faults", BENCH_FAULTS),
                             resume=resume)
            failpoints.install(None)
            result_file.write_text(json.dumps({"agree": result.agree, "differences": result.differences[:20],
                                               "stats": result.stats}, default=str), encoding="utf-8")
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never swallowed
            try:
                (day_dir / "bench-error.txt").write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
            except OSError:
                pass
        finally:
            os._exit(code)
    return _watch(pid, plan, shared, result_file, day_dir)


def _install_handler(plan: dict[str, Any], shared: _Shared) -> None:
    mode = plan["mode"]
    counts: Counter[str] = Counter()
    commits = [0]

    def handler(name: str) -> None:
        if name == "store.commit.before":
            commits[0] += 1
            shared.set_point(name, 1 if mode != "commit" or commits[0] == plan["nth"] else 0)
            if mode == "commit" and commits[0] == plan["nth"]:
                struct.pack_into("<I", shared.buf, 0, 2)  # "kill me now": the parent is polling for it
                for _ in range(200_000):  # give the parent its chance while COMMIT runs next
                    if struct.unpack_from("<I", shared.buf, 0)[0] != 2:
                        break
            return
        shared.set_point(name, 0 if name == "store.commit.after" else None)
        if mode == "point":
            counts[name] += 1
            missed = counts["ballot.scanning.take_in"] > FALLBACK_BALLOTS and name.startswith("ballot.")
            if (name == plan["target"] and counts[name] == plan["nth"]) or missed:
                os.kill(os.getpid(), signal.SIGSTOP)

    failpoints.install(handler)


def _watch(pid: int, plan: dict[str, Any], shared: _Shared, result_file: Path, day_dir: Path) -> dict[str, Any]:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    mode = plan["mode"]
    kill_at = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG | os.WUNTRACED)
        if done:
            if os.WIFSTOPPED(status):
                return _kill(pid, shared, "point")
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                return {"killed": False, **json.loads(result_file.read_text(encoding="utf-8"))}
            error = (day_dir / "bench-error.txt")
            raise RuntimeError(f"the box's process failed (status {status}): "
                               f"{error.read_text(encoding='utf-8') if error.exists() else 'no message'}")
        if mode == "commit" and struct.unpack_from("<I", shared.buf, 0)[0] == 2:
            struct.pack_into("<I", shared.buf, 0, 1)  # let the child go into its COMMIT ...
            _spin(plan["delay_s"])
            return _kill(pid, shared, "commit")  # ... and cut the power while it runs
        if mode == "time":
            if kill_at is None and shared.hits() > 0:
                kill_at = time.monotonic() + plan["after_s"]
            if kill_at is not None and time.monotonic() >= kill_at:
                return _kill(pid, shared, "time")
        if time.monotonic() > deadline:
            return _kill(pid, shared, "timeout")
        if mode != "commit":
            time.sleep(0.0005)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _kill(pid: int, shared: _Shared, how: str) -> dict[str, Any]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return {"killed": True, "how": how, "point": shared.point() or "(before the first point)",
            "inside_commit": shared.in_commit()}


def _day_summary(day_no: int, day_dir: Path, finished: dict[str, Any]) -> dict[str, Any]:
    return {"day": day_no, "agree": finished["agree"], "differences": finished["differences"],
            "ballots_cast": finished["stats"].get("ballots_cast", 0), "power_cuts": finished["stats"].get("power_cuts")}


def _attach_recoveries(kills: list[dict[str, Any]], work: Path) -> None:
    """The boot after each kill: what recovery decided, and counted vs physically in the box."""
    by_day: dict[int, list[dict[str, Any]]] = {}
    for day in sorted({k["day"] for k in kills}):
        journal = work / f"day-{day:03d}" / WORLD_DIR / JOURNAL
        lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()]
        by_day[day] = [e for e in lines if e["e"] == "boot"]
    for day, boots in by_day.items():
        day_kills = [k for k in kills if k["day"] == day]
        for kill, boot in zip(day_kills, boots):
            kill["decisions"] = boot.get("decisions", [])
            kill["counted"] = boot.get("counted", {})
            kill["in_box"] = boot.get("in_box", {})
        assert replay(work / f"day-{day:03d}" / WORLD_DIR / JOURNAL).boots == len(boots)


def _report(kills: list[dict[str, Any]], days: list[dict[str, Any]], names: list[str], runs: int, seed: int,
            voters: int, wall_s: float) -> dict[str, Any]:
    lost = doubled = 0
    for k in kills:
        for style in set(k.get("counted", {})) | set(k.get("in_box", {})):
            diff = k["counted"].get(style, 0) - k["in_box"].get(style, 0)
            lost += max(0, -diff)
            doubled += max(0, diff)
    by_point = Counter(k["point"] for k in kills)
    return {
        "runs": len(kills), "asked": runs, "seed": seed, "voters_per_day": voters, "days": len(days),
        "ballots_lost": lost, "ballots_doubled": doubled,
        "days_whose_tallies_differ": sum(1 for d in days if not d["agree"]),
        "differences": [x for d in days for x in d["differences"]][:50],
        "killed_inside_commit": sum(1 for k in kills if k["inside_commit"]),
        "kills_by_mode": dict(Counter(k["how"] for k in kills)),
        "point_kills_at_their_target": sum(1 for k in kills if k["how"] == "point" and k["point"] == k["target"]),
        "kills_by_point": dict(sorted(by_point.items())),
        "points_never_killed": [n for n in names if n not in by_point],
        "recovery_decisions": dict(Counter(d for k in kills for d in k.get("decisions", []))),
        "wall_seconds": round(wall_s, 1), "seconds_per_run": round(wall_s / max(1, len(kills)), 3),
    }
