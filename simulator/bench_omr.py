"""`ballotbox bench omr`: the interpreter against the seeded corpus of simulator.corpus (BENCHMARKS.md, OMR).

    ballotbox bench omr --level L1|L2|L3|foreign --ballots N --seed S [--kind mayor|council|mixed]
                        [--out DIR] [--keep-failures]

For each generated sheet, `omr.interpret` runs once (on one core, warm; only that call is timed) and its
reading is judged against the sheet's ground truth:

    silent misread    a count (valid / invalid) whose outcome differs from the intended one, or any count
                      of a sheet that must be rejected (L3's 12-degree and 0.95-scale sheets). Must be 0.
    foreign accepted  a foreign sheet the box would let into the ballot box (valid, invalid or ambiguous)
    correct           the right count; for must-reject and foreign sheets, a rejection
    return            unreadable / foreign where a count was expected (the voter reinserts or gets a new one)
    flag              ambiguous: a named box the committee looks at
    per box           phantom votes (read "mark", not marked), missed votes (marked, read "empty"),
                      marginal boxes; each attributed to what was on the box (non-mark, stamp, streak ...)

Prints a table (silent misreads first) and writes `{out}/omr-{level}-{kind}-{seed}.json` with every
figure, the command, the corpus parameters and the software hash. Exit 0 when the level's bar is met:
0 silent misreads (L1-L3), and at L1 at most 1 % of ballots flagged; foreign: 0 accepted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.corpus import CorpusItem, corpus_parameters, generate

L1_FLAG_BAR = 0.01  # BENCHMARKS.md: <= 1 % of L1 ballots flagged
P50_BAR_MS = 25.0  # BENCHMARKS.md: p50 <= 25 ms per 200-dpi A4 ballot (reported, not part of the exit code)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
KEEP_RETURNS = 20  # --keep-failures keeps every silent misread, flag and foreign accept, and the first returns
LIST_CAP = 500  # per-ballot lists in the JSON (the counts are always complete)

COUNTS = ("valid", "invalid")


@dataclass
class Record:
    """One sheet's reading, judged."""

    index: int
    item: str
    kind: str
    foreign: str | None
    expected_verdict: str
    verdict: str
    reasons: list[str]
    category: str  # correct | silent_misread | foreign_accept | flag | return | error
    latency_ms: float
    generation_ms: float
    boxes: int
    boxes_read: int  # box scores returned
    counted: bool  # the reading was a count (valid / invalid)
    outcome_match: bool | None  # counted: did every contest match the intended outcome
    phantom: list[dict[str, Any]] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)
    marginal: list[dict[str, Any]] = field(default_factory=list)
    contests: dict[str, Any] = field(default_factory=dict)  # expected vs read, when they differ
    features: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    settled: list[dict[str, Any]] = field(default_factory=list)  # boxes the second opinion settled


def run(args: argparse.Namespace) -> int:
    import cv2

    saved_env = {v: os.environ.get(v) for v in THREAD_VARS}
    saved_threads = cv2.getNumThreads()
    for v in THREAD_VARS:  # one core: whatever numpy / OpenCV call under interpret() stays on it
        os.environ[v] = "1"
    cv2.setNumThreads(1)
    try:
        return _run(args)
    finally:
        cv2.setNumThreads(saved_threads)
        for v, value in saved_env.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from firmware.common.identity import software_hash, software_version
    from firmware.errors import UserError
    from omr.interpret import interpret

    level, kind, n, seed = args.level, args.kind, int(args.ballots), int(args.seed)
    if n < 1:
        raise UserError(f"--ballots {n}: give at least 1")
    opinion = getattr(args, "second_opinion", "on")
    model = None
    if opinion == "on":
        from omr.second_opinion import MarkClassifier

        model = MarkClassifier.load()
        if model is None:
            raise UserError(f"--second-opinion on: {MarkClassifier.unavailable_reason()}; "
                            "install ai-edge-litert (bash run.sh test sets it up) or run with --second-opinion off")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keep = bool(getattr(args, "keep_failures", False))
    fail_dir = out / f"failures-{level}-{kind}-{seed}"
    command = (f"ballotbox bench omr --level {level} --ballots {n} --seed {seed} --kind {kind} --out {out}"
               f" --second-opinion {opinion}" + (" --keep-failures" if keep else ""))

    records: list[Record] = []
    kept: list[str] = []
    returns_kept = 0
    wall0 = time.perf_counter()
    items = generate(level, kind, n, seed)
    err = Console(stderr=True)
    with Progress(TextColumn(f"omr {level} {kind}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("bench", total=n)
        for i in range(n):
            g0 = time.perf_counter()
            item = next(items)
            gen_ms = (time.perf_counter() - g0) * 1000
            if i == 0:  # warm: imports, zbar, the layout cache
                _safe_interpret(interpret, item, model)
            t0 = time.perf_counter()
            result, error = _safe_interpret(interpret, item, model)
            latency = (time.perf_counter() - t0) * 1000
            rec = judge(item, result, latency, gen_ms, error)
            records.append(rec)
            if keep and (rec.category in ("silent_misread", "flag", "foreign_accept", "error") or (
                    rec.category == "return" and returns_kept < KEEP_RETURNS)):
                returns_kept += rec.category == "return"
                kept.append(str(_save_failure(fail_dir, item, result, rec)))
            del item, result
            progress.advance(task)
    wall = time.perf_counter() - wall0

    summary = summarise(records, level)
    report = {
        "benchmark": "omr",
        "command": command,
        "argv": sys.argv,
        "software_version": software_version(),
        "software_hash": software_hash(),
        "corpus": {"generator": "simulator.corpus", "level": level, "kind": kind, "ballots": n, "seed": seed,
                   **corpus_parameters()},
        "second_opinion": model.runtime if model is not None else "off",
        "bar": _bar(summary, level),
        **summary,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_note": "the whole process: the corpus generator's frames included",
        "wall_s": round(wall, 1),
        "threads": {"opencv": 1, **{v: "1" for v in THREAD_VARS}},
        "kept_failures": kept,
    }
    path = out / f"omr-{level}-{kind}-{seed}{'' if model is not None else '-classical'}.json"
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=_json_default), encoding="utf-8")
    _print(report, path, fail_dir if kept else None)
    return 0 if report["bar"]["met"] else 1


_REFERENCES: dict[str, Any] = {}
CALIBRATED_WHITE = 250.0  # the corpus' white paper under even light, as the camera's calibration would record


def _safe_interpret(interpret: Any, item: CorpusItem, model: Any = None) -> tuple[Any, str | None]:
    """As the box reads: with the printed references of its installed election (rendered once)."""
    from firmware.cec.ballots import references_for

    digest = item.election.digest()
    if digest not in _REFERENCES:
        _REFERENCES[digest] = references_for(item.election)
    try:
        return interpret(item.image, item.election, dpi=item.dpi, references=_REFERENCES[digest],
                         white=CALIBRATED_WHITE, second_opinion=model), None
    except Exception as exc:  # noqa: BLE001 - a crash is a finding, not the end of the benchmark
        return None, f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------------
# Judging one reading
# ---------------------------------------------------------------------------------------------------
def judge(item: CorpusItem, result: Any, latency_ms: float, generation_ms: float = 0.0,
          error: str | None = None) -> Record:
    """The category of one reading against the item's truth, and its per-box errors."""
    features = features_of(item)
    base: dict[str, Any] = {"index": item.index, "item": item.name, "kind": item.kind, "foreign": item.foreign,
                            "expected_verdict": item.expected_verdict, "latency_ms": round(latency_ms, 3),
                            "generation_ms": round(generation_ms, 1), "boxes": len(item.truth), "features": features}
    if result is None:
        return Record(**base, verdict="error", reasons=[], category="error", boxes_read=0, counted=False,
                      outcome_match=None, error=error)
    verdict = str(result.verdict.value if hasattr(result.verdict, "value") else result.verdict)
    reasons = [str(r) for r in result.reasons]
    counted = verdict in COUNTS
    diffs: dict[str, Any] = {}
    for cid, exp in item.expected.items():
        got = result.contests.get(cid)
        read = None if got is None else {"outcome": str(got.outcome.value), "list": got.list,
                                         "candidates": sorted(got.candidates)}
        if read is None or read != {**exp, "candidates": sorted(exp["candidates"])}:
            diffs[cid] = {"expected": exp, "read": read}
    outcome_match = not diffs if counted else None
    if item.expected_verdict == "foreign":
        category = "correct" if verdict in ("foreign", "unreadable") else "foreign_accept"
    elif item.expected_verdict == "reject":
        category = ("correct" if verdict in ("foreign", "unreadable") else
                    "silent_misread" if counted else "flag")
    elif counted:
        category = "correct" if outcome_match else "silent_misread"
    elif verdict == "ambiguous":
        category = "flag"
    else:
        category = "return"
    rec = Record(**base, verdict=verdict, reasons=reasons, category=category, boxes_read=len(result.scores),
                 counted=counted, outcome_match=outcome_match, contests=diffs if counted and diffs else {})
    for s in result.scores:
        truth = item.truth.get(s.box_id)
        if truth is None:  # a box the layout does not have: the engine and the corpus disagree on the style
            rec.phantom.append({"box": s.box_id, "fill": s.fill, "causes": ["unknown box"]})
            continue
        entry = {"box": s.box_id, "fill": s.fill, "causes": truth.causes()}
        if getattr(s, "opinion", None) is not None and s.mark != "marginal":
            rec.settled.append({**entry, "p": s.opinion, "read": s.mark, "marked": truth.marked,
                                "right": (s.mark == "mark") == truth.marked})
        if s.mark == "mark" and not truth.marked:
            rec.phantom.append(entry)
        elif s.mark == "empty" and truth.marked:
            rec.missed.append(entry)
        elif s.mark == "marginal":
            rec.marginal.append({**entry, "marked": truth.marked})
    return rec


def features_of(item: CorpusItem) -> dict[str, list[str]]:
    """What the sheet had, in bins a person can read: the rows of the "where it fails" table."""
    d = item.distortions
    f: dict[str, list[str]] = {"ballot": [item.kind], "expected": [item.expected_verdict]}
    if item.foreign:
        f["foreign"] = [item.foreign, f"{item.foreign}: {d.get('variant', '')}"]
    f["orientation"] = ["180°" if d.get("upside_down") else "0°"]
    rot = abs(d.get("rotation_deg", 0.0))
    f["rotation"] = ["12° (reject)" if d.get("reject") == "rotation_12" else
                     "≤1°" if rot <= 1 else "1–3°" if rot <= 3 else "3–6°" if rot <= 6 else ">6°"]
    ks = d.get("perspective", {}).get("keystone", 0.0) * 100
    lo = min(7.5, 2.5 * int(ks // 2.5))
    f["perspective"] = [f"{lo:g}–{lo + 2.5:g} %"]
    sc = d.get("print_scale", 1.0)
    f["print_scale"] = ["0.95 (reject)" if d.get("reject") == "print_scale_0.95" else
                        "1.000" if abs(sc - 1) < 1e-9 else "<0.995" if sc < 0.995 else ">1.005" if sc > 1.005
                        else "0.995–1.005"]
    streaks = d.get("streaks") or []
    f["streak"] = sorted({f"{s['polarity']} {s['width_px']}px " + ("through boxes" if s["boxes_crossed"] else
                                                                    "clear of boxes") for s in streaks}) or ["none"]
    creases = d.get("creases") or []
    f["crease"] = sorted({"through boxes" if c["boxes_crossed"] else "clear of boxes" for c in creases}) or ["none"]
    stamp = d.get("stamp")
    if stamp:
        under = [item.truth[b] for b in stamp.get("boxes_under", []) if b in item.truth]
        f["stamp"] = [stamp["placement"] + (", on a marked box" if any(t.marked for t in under) else
                                            ", on an empty box" if under else "")]
    crop = d.get("registration_cropped")
    f["registration"] = [f"density {d.get('registration_density', 1.0):g}" + (
        f", {crop['mark']} cropped" if crop else "")]
    marks = [t for t in item.truth.values() if t.marked]
    f["ink"] = sorted({t.ink or "" for t in marks}) or ["no marks"]
    f["mark_style"] = sorted({t.style or "" for t in marks}) or ["no marks"]
    f["non_mark"] = sorted({t.non_mark for t in item.truth.values() if t.non_mark}) or ["none"]  # type: ignore[misc]
    return f


# ---------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------
def summarise(records: list[Record], level: str) -> dict[str, Any]:
    n = len(records)
    cats = Counter(r.category for r in records)
    verdicts = Counter(r.verdict for r in records)
    flags = cats["flag"]
    lat = np.array([r.latency_ms for r in records if r.category != "error"] or [0.0])
    by_kind: dict[str, dict[str, float]] = {}
    for k in sorted({r.kind for r in records}):
        v = np.array([r.latency_ms for r in records if r.kind == k and r.category != "error"] or [0.0])
        by_kind[k] = _percentiles(v) | {"n": int(v.size)}
    gen = np.array([r.generation_ms for r in records])
    box_causes: dict[str, Counter[str]] = {"phantom": Counter(), "missed": Counter(), "marginal_marked": Counter(),
                                            "marginal_unmarked": Counter()}
    for r in records:
        for e in r.phantom:
            box_causes["phantom"].update(e["causes"])
        for e in r.missed:
            box_causes["missed"].update(e["causes"])
        for e in r.marginal:
            box_causes["marginal_marked" if e["marked"] else "marginal_unmarked"].update(e["causes"])
    by_feature: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for r in records:
        for feat, values in r.features.items():
            for value in values:
                c = by_feature[feat][value]
                c["n"] += 1
                c[r.category] += 1
    return_reasons = Counter(reason.split(":")[0] for r in records if r.category == "return" for reason in r.reasons)
    flag_reasons = Counter(reason for r in records if r.category == "flag" for reason in r.reasons)
    figures = {
        "ballots": n,
        "silent_misreads": cats["silent_misread"],
        "must_reject_counted": sum(1 for r in records if r.expected_verdict == "reject" and r.counted),
        "foreign_false_accepts": cats["foreign_accept"],
        "foreign_accepted_as": dict(Counter(r.verdict for r in records if r.category == "foreign_accept")),
        "errors": cats["error"],
        "correct_verdicts": cats["correct"],
        "returns": cats["return"],
        "flags": flags,
        "flag_rate": round(flags / n, 5) if n else 0.0,
        "return_rate": round(cats["return"] / n, 5) if n else 0.0,
        "box_positions": sum(r.boxes for r in records),
        "box_positions_read": sum(r.boxes_read for r in records),
        "box_positions_counted": sum(r.boxes for r in records if r.counted),
        "phantom_votes": sum(len(r.phantom) for r in records),
        "missed_votes": sum(len(r.missed) for r in records),
        "marginal_boxes": sum(len(r.marginal) for r in records),
        "marginal_boxes_marked": sum(1 for r in records for e in r.marginal if e["marked"]),
        "marginal_boxes_unmarked": sum(1 for r in records for e in r.marginal if not e["marked"]),
        "second_opinion_settled_mark": sum(1 for r in records for e in r.settled if e["read"] == "mark"),
        "second_opinion_settled_empty": sum(1 for r in records for e in r.settled if e["read"] == "empty"),
        "second_opinion_settled_wrong": sum(1 for r in records for e in r.settled if not e["right"]),
        "ballots_with_settled_box": sum(1 for r in records if r.settled),
        "expected": dict(Counter(r.expected_verdict for r in records)),
    }
    return {
        "figures": figures,
        "verdicts": dict(verdicts),
        "categories": dict(cats),
        "latency_ms": _percentiles(lat) | {"by_kind": by_kind},
        "generation_ms": _percentiles(gen),
        "return_reasons": dict(return_reasons.most_common()),
        "flag_reasons": dict(flag_reasons.most_common(50)),
        "box_causes": {k: dict(v.most_common()) for k, v in box_causes.items()},
        "by_feature": {feat: {val: dict(c) for val, c in sorted(vals.items())} for feat, vals in by_feature.items()},
        "foreign_by_kind": _foreign_table(records),
        "silent_misreads": [_brief(r) for r in records if r.category == "silent_misread"][:LIST_CAP],
        "foreign_accepts": [_brief(r) for r in records if r.category == "foreign_accept"][:LIST_CAP],
        "flagged": [_brief(r) for r in records if r.category == "flag"][:LIST_CAP],
        "returned": [_brief(r) for r in records if r.category == "return"][:LIST_CAP],
        "errors": [_brief(r) for r in records if r.category == "error"][:LIST_CAP],
        "second_opinion_settled": [{"item": r.item, "category": r.category, "boxes": r.settled}
                                   for r in records if r.settled][:LIST_CAP],
    }


def _percentiles(v: np.ndarray) -> dict[str, float]:
    return {"p50": round(float(np.percentile(v, 50)), 3), "p95": round(float(np.percentile(v, 95)), 3),
            "p99": round(float(np.percentile(v, 99)), 3), "mean": round(float(v.mean()), 3),
            "max": round(float(v.max()), 3)}


def _foreign_table(records: list[Record]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r.foreign:
            out[r.foreign]["n"] += 1
            out[r.foreign]["rejected" if r.category == "correct" else "accepted"] += 1
            out[r.foreign][f"verdict:{r.verdict}"] += 1
            for reason in r.reasons:
                out[r.foreign][f"reason:{reason.split(':')[0]}"] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def _brief(r: Record) -> dict[str, Any]:
    keep = asdict(r)
    keep["features"] = {k: v for k, v in r.features.items()}
    return keep


def _bar(summary: dict[str, Any], level: str) -> dict[str, Any]:
    f = summary["figures"]
    rules: list[dict[str, Any]] = []
    if level == "foreign":
        rules.append({"rule": "0 foreign sheets accepted", "value": f["foreign_false_accepts"],
                      "met": f["foreign_false_accepts"] == 0})
    else:
        rules.append({"rule": "0 silent misreads", "value": f["silent_misreads"], "met": f["silent_misreads"] == 0})
    if level == "L1":
        rules.append({"rule": "<= 1 % of L1 ballots flagged", "value": f["flag_rate"],
                      "met": f["flag_rate"] <= L1_FLAG_BAR})
    rules.append({"rule": "0 interpreter errors (exceptions)", "value": f["errors"], "met": f["errors"] == 0})
    return {"met": all(r["met"] for r in rules), "rules": rules}


def _save_failure(fail_dir: Path, item: CorpusItem, result: Any, rec: Record) -> Path:
    import cv2

    fail_dir.mkdir(parents=True, exist_ok=True)
    stem = fail_dir / f"{item.name}-{rec.category}"
    cv2.imwrite(str(stem.with_suffix(".png")), cv2.cvtColor(item.image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 1])
    doc = {"truth": item.truth_json(), "judged": asdict(rec),
           "interpretation": None if result is None else {
               **result.to_json(), "orientation": result.orientation,
               "scores": [{"box": s.box_id, "fill": s.fill, "mark": s.mark} for s in result.scores
                          if s.mark != "empty" or item.truth.get(s.box_id, None) is None
                          or item.truth[s.box_id].marked]},
           "regenerate": f"simulator.corpus.make_item({item.level!r}, <kind>, {item.index}, {item.seed})"}
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=_json_default),
                                         encoding="utf-8")
    return stem.with_suffix(".png")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


# ---------------------------------------------------------------------------------------------------
# The printed table
# ---------------------------------------------------------------------------------------------------
def _print(report: dict[str, Any], path: Path, fail_dir: Path | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=max(110, Console().width))
    f, c = report["figures"], report["corpus"]
    level = c["level"]
    n = f["ballots"]

    def pct(x: int) -> str:
        return f"{x} ({100 * x / n:.2f} %)" if n else str(x)

    def ok(met: bool) -> str:
        return "[green]met[/]" if met else "[bold red]NOT MET[/]"

    t = Table(title=f"OMR benchmark · {level} · {c['kind']} · {n} ballots · seed {c['seed']}", show_lines=False)
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("bar")
    if level == "foreign":
        t.add_row("[bold]foreign sheets accepted[/]", str(f["foreign_false_accepts"]),
                  "0 · " + ok(f["foreign_false_accepts"] == 0))
        if f["foreign_accepted_as"]:
            t.add_row("  accepted as", ", ".join(f"{k} {v}" for k, v in f["foreign_accepted_as"].items()), "")
    t.add_row("[bold]silent misreads[/]", str(f["silent_misreads"]),
              "0 · " + ok(f["silent_misreads"] == 0) if level != "foreign" else "")
    if f["expected"].get("reject"):
        t.add_row("  of them must-reject sheets counted", f"{f['must_reject_counted']} of {f['expected']['reject']}",
                  "")
    if f["errors"]:
        t.add_row("[bold red]interpreter errors[/]", str(f["errors"]), "0 · " + ok(False))
    t.add_row("correct verdicts", pct(f["correct_verdicts"]), "")
    t.add_row("returns (unreadable / foreign)", pct(f["returns"]), "")
    t.add_row("flags (ambiguous)", pct(f["flags"]),
              f"≤ 1 % · {ok(f['flag_rate'] <= L1_FLAG_BAR)}" if level == "L1" else "")
    t.add_row("box positions generated / read / counted",
              f"{f['box_positions']:,} / {f['box_positions_read']:,} / {f['box_positions_counted']:,}", "")
    t.add_row("phantom votes (boxes)", str(f["phantom_votes"]), "")
    t.add_row("missed votes (boxes)", str(f["missed_votes"]), "")
    t.add_row("marginal boxes (marked / unmarked)",
              f"{f['marginal_boxes']} ({f['marginal_boxes_marked']} / {f['marginal_boxes_unmarked']})", "")
    if report["second_opinion"] == "off":
        t.add_row("second opinion", "off (classical engine alone)", "")
    else:
        t.add_row(f"second opinion ({report['second_opinion']}): settled mark / empty",
                  f"{f['second_opinion_settled_mark']} / {f['second_opinion_settled_empty']} boxes "
                  f"on {f['ballots_with_settled_box']} ballots", "")
        t.add_row("  of them settled against the truth", str(f["second_opinion_settled_wrong"]), "")
    lat = report["latency_ms"]
    t.add_row("latency p50 / p95 / p99 (ms, one core)", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}", "")
    for kind, v in lat["by_kind"].items():
        note = ""
        if kind == "mayor" and level in ("L1", "foreign"):
            note = f"p50 ≤ {P50_BAR_MS:g} ms (200-dpi A4) · {ok(v['p50'] <= P50_BAR_MS)}"
        if len(lat["by_kind"]) > 1 or note:
            t.add_row(f"  {kind} ({v['n']})", f"{v['p50']:.1f} / {v['p95']:.1f} / {v['p99']:.1f}", note)
    t.add_row("corpus generation p50 (ms per sheet)", f"{report['generation_ms']['p50']:.0f}", "")
    t.add_row("peak memory (RSS, process)", f"{report['peak_rss_mb']:.0f} MB", "")
    t.add_row("wall time", f"{report['wall_s']:.1f} s", "")
    t.add_row("[bold]bar[/]", "", ok(report["bar"]["met"]))
    console.print(t)

    if report["return_reasons"] or report["flag_reasons"]:
        r = Table(title="Returns and flags by reason")
        r.add_column("reason")
        r.add_column("returns", justify="right")
        r.add_column("flags", justify="right")
        flag_codes: Counter[str] = Counter()
        for reason, count in report["flag_reasons"].items():
            flag_codes[reason.split(":")[0]] += count
        for reason in sorted(set(report["return_reasons"]) | set(flag_codes)):
            r.add_row(escape(reason), str(report["return_reasons"].get(reason, "")), str(flag_codes.get(reason, "")))
        console.print(r)

    bad_rows = []
    for feat, vals in report["by_feature"].items():
        for val, cnt in vals.items():
            bad = sum(cnt.get(k, 0) for k in ("silent_misread", "foreign_accept", "flag", "return", "error"))
            if bad:
                bad_rows.append((cnt.get("silent_misread", 0) + cnt.get("foreign_accept", 0), bad / cnt["n"], feat,
                                 val, cnt))
    if bad_rows:
        w = Table(title="Where it fails (sheets with each feature; a sheet counts under each of its features)")
        for col in ("feature", "value", "sheets", "silent / accepted", "flags", "returns", "correct"):
            w.add_column(col, justify="left" if col in ("feature", "value") else "right")
        for _, _, feat, val, cnt in sorted(bad_rows, key=lambda x: (-x[0], -x[1]))[:30]:
            silent = cnt.get("silent_misread", 0) + cnt.get("foreign_accept", 0)
            w.add_row(feat, escape(val), str(cnt["n"]), str(silent), str(cnt.get("flag", 0)), str(cnt.get("return", 0)),
                      str(cnt.get("correct", 0)))
        console.print(w)

    causes = report["box_causes"]
    if any(causes.values()):
        b = Table(title="Box errors by what was on the box (a box counts under each of its causes)")
        b.add_column("cause")
        for col in ("phantom", "missed", "marginal (marked)", "marginal (unmarked)"):
            b.add_column(col, justify="right")
        names = sorted({k for v in causes.values() for k in v})
        for name in names:
            b.add_row(escape(name), *(str(causes[k].get(name, "")) for k in ("phantom", "missed", "marginal_marked",
                                                                      "marginal_unmarked")))
        console.print(b)

    if report["foreign_by_kind"]:
        fk = Table(title="Foreign sheets by kind")
        for col in ("kind", "sheets", "rejected", "accepted", "verdicts / reasons"):
            fk.add_column(col, justify="left" if col in ("kind", "verdicts / reasons") else "right")
        for kind, cnt in report["foreign_by_kind"].items():
            detail = ", ".join(f"{k} {v}" for k, v in sorted(cnt.items()) if ":" in k)
            fk.add_row(kind, str(cnt["n"]), str(cnt.get("rejected", 0)), str(cnt.get("accepted", 0)), escape(detail))
        console.print(fk)

    for label, key in (("Silent misreads", "silent_misreads"), ("Foreign sheets accepted", "foreign_accepts")):
        rows = report[key]
        if rows:
            console.print(f"[bold red]{label}[/] (first 10 of {len(rows)}):")
            for r in rows[:10]:
                wrong = "; ".join(f"{e['box']} [{', '.join(e['causes'])}]" for e in r["phantom"] + r["missed"])
                console.print(escape(f"  {r['item']}: expected {r['expected_verdict']}, read {r['verdict']} "
                                     f"{r['reasons']} {r['contests'] or ''} "
                                     f"{('wrong boxes: ' + wrong) if wrong else ''}"))
    console.print(f"JSON: {path}")
    if fail_dir is not None:
        console.print(f"failure images: {fail_dir}/")


# ---------------------------------------------------------------------------------------------------
# The volume total: several runs (levels, kinds, seeds) added up against the bars
# ---------------------------------------------------------------------------------------------------
VVSG_VOLUME = 1_549_703  # box positions over L1 + L2 (BENCHMARKS.md, the VVSG acceptance volume)


def total(paths: list[Path], out: Path | None = None) -> int:
    """Add up benchmark JSON files (one per run) and judge the bars over the whole: box positions over
    L1+L2, silent misreads, L1 flag rate, foreign accepts. Runs with the second opinion off are refused:
    the total is of the engine as the box runs it."""
    from rich.console import Console
    from rich.table import Table

    from firmware.errors import UserError

    runs = []
    for p in paths:
        try:
            doc = json.loads(Path(p).read_text(encoding="utf-8"))
            c, f = doc["corpus"], doc["figures"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{p}: not an OMR benchmark JSON ({type(exc).__name__}: {exc}); give the files "
                            "`bench omr` wrote") from None
        if doc.get("second_opinion", "off") == "off":
            raise UserError(f"{p}: a run with the second opinion off; the total is of the engine as the box runs it")
        runs.append((p, c, f, doc))
    seen = {(c["level"], c["kind"], c["seed"]) for _, c, _, _ in runs}
    if len(seen) != len(runs):
        raise UserError("the same level, kind and seed given twice: each corpus would be counted twice")
    t = Table(title="OMR benchmark total")
    for col in ("run", "ballots", "box positions (counted)", "silent misreads", "correct", "returned", "flagged",
                "foreign accepted", "p50 / p99 ms"):
        t.add_column(col, justify="left" if col == "run" else "right")
    sums: dict[str, Counter[str]] = defaultdict(Counter)
    a4_p50: list[float] = []
    for p, c, f, doc in sorted(runs, key=lambda r: (r[1]["level"], r[1]["kind"], r[1]["seed"])):
        s = sums[c["level"]]
        for key in ("ballots", "box_positions", "box_positions_counted", "silent_misreads", "correct_verdicts",
                    "returns", "flags", "foreign_false_accepts", "errors", "phantom_votes", "missed_votes"):
            s[key] += int(f[key])
        lat = doc["latency_ms"]
        if c["level"] == "L1" and "mayor" in lat.get("by_kind", {}):
            a4_p50.append(lat["by_kind"]["mayor"]["p50"])
        t.add_row(f"{c['level']} {c['kind']} seed {c['seed']}", f"{f['ballots']:,}",
                  f"{f['box_positions']:,} ({f['box_positions_counted']:,})",
                  str(f["silent_misreads"]), f"{f['correct_verdicts']:,}", f"{f['returns']:,}", f"{f['flags']:,}",
                  str(f["foreign_false_accepts"]), f"{lat['p50']:.1f} / {lat['p99']:.1f}")
    console = Console(width=max(110, Console().width))
    console.print(t)
    # the volume is of positions on sheets whose reading was counted: a silent misread can only happen
    # there (a returned or flagged sheet's positions were never trusted)
    volume = sums["L1"]["box_positions_counted"] + sums["L2"]["box_positions_counted"]
    l1 = sums["L1"]
    rules = [
        {"rule": f"box positions on counted sheets over L1+L2 >= {VVSG_VOLUME:,}", "value": volume,
         "met": volume >= VVSG_VOLUME},
        {"rule": "0 silent misreads at L1+L2", "value": l1["silent_misreads"] + sums["L2"]["silent_misreads"],
         "met": l1["silent_misreads"] + sums["L2"]["silent_misreads"] == 0},
        {"rule": "<= 1 % of L1 ballots flagged", "value": round(l1["flags"] / l1["ballots"], 5) if l1["ballots"] else None,
         "met": bool(l1["ballots"]) and l1["flags"] <= L1_FLAG_BAR * l1["ballots"]},
    ]
    if sums["L3"]["ballots"]:
        rules.append({"rule": "0 silent misreads at L3", "value": sums["L3"]["silent_misreads"],
                      "met": sums["L3"]["silent_misreads"] == 0})
    if sums["foreign"]["ballots"]:
        rules.append({"rule": "0 foreign sheets accepted", "value": sums["foreign"]["foreign_false_accepts"],
                      "met": sums["foreign"]["foreign_false_accepts"] == 0})
    if a4_p50:
        rules.append({"rule": "p50 <= 25 ms per L1 A4 (mayor) ballot, one core", "value": max(a4_p50),
                      "met": max(a4_p50) <= 25.0})
    errors = sum(s["errors"] for s in sums.values())
    rules.append({"rule": "0 interpreter errors (exceptions)", "value": errors, "met": errors == 0})
    for r in rules:
        console.print(f"{r['rule']}: {r['value']} · " + ("[green]met[/]" if r["met"] else "[bold red]NOT MET[/]"))
    report = {"benchmark": "omr-total", "runs": [str(p) for p, *_ in runs],
              "by_level": {k: dict(v) for k, v in sorted(sums.items())}, "l1_l2_box_positions": volume,
              "bar": {"met": all(r["met"] for r in rules), "rules": rules}}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        console.print(f"written: {out}")
    return 0 if report["bar"]["met"] else 1
