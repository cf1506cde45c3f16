"""Command line of biometrics/: `biometrics extract | match-pairs | identify`.

The ballotbox CLI wires these in with `add_parsers(subparsers)` (`bench fingerprints`, which needs the
simulator's benchmark, is wired in ballotbox/cli.py: biometrics/ imports no simulator);
`main(argv)` runs them alone (tests, scripts). Exit codes: 0 done; 2 bad input (one line per bad file or row on
stderr, naming it and what is wrong; the good files and rows are still done and written).

This is the I/O edge of biometrics/: it reads images and records from disk and writes records and scores.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from biometrics.errors import BiometricInputError
from biometrics.iso19794 import read_record, write_record
from biometrics.template import FingerprintTemplate
from firmware.common.arguments import (
    OneLineParser,
    input_dir,
    input_file,
    number,
    output_dir,
    output_file,
    whole,
)
from firmware.errors import EXIT_BAD_INPUT, EXIT_OK

RECORD_SUFFIXES = {".iso", ".fmr"}
IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".bmp", ".jpg", ".jpeg", ".pgm"}


def main(argv: Sequence[str] | None = None) -> int:
    """`biometrics ...` on its own: returns the exit code."""
    parser = OneLineParser(prog="ballotbox")
    commands = parser.add_subparsers(dest="command", required=True)
    add_parsers(commands)
    args = parser.parse_args(argv)
    return int(args.handler(args))


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add `biometrics` and its commands to a CLI's subparsers; each sets `handler(args) -> exit code`."""
    biometrics = subparsers.add_parser("biometrics", help="fingerprint templates: extract, match, identify")
    commands = biometrics.add_subparsers(dest="biometrics_command", required=True)

    extract = commands.add_parser("extract", help="one ISO/IEC 19794-2 record per image (same stem + .iso)")
    extract.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    extract.add_argument("--dpi", type=number(250, 1500, "dpi"), default=None,
                         help="resolution if the image does not say (else 500)")
    extract.add_argument("--out-dir", type=output_dir("the ISO records"), required=True)
    extract.set_defaults(handler=extract_command)

    pairs = commands.add_parser("match-pairs", help="score every a,b pair of a CSV (images or .iso records)")
    pairs.add_argument("pairs", type=input_file("a CSV of pairs a,b"), metavar="PAIRS.csv")
    pairs.add_argument("--out", type=output_file("the scores' CSV"), default=None, metavar="SCORES.csv",
                       help="default: standard output")
    pairs.add_argument("--dpi", type=number(250, 1500, "dpi"), default=None)
    pairs.set_defaults(handler=match_pairs_command)

    identify = commands.add_parser("identify", help="1:N: the best templates of a gallery folder, JSON lines")
    identify.add_argument("probe", type=input_file("the probe's image or .iso record"), metavar="PROBE")
    identify.add_argument("--gallery", type=input_dir("the gallery's folder of .iso records or images"),
                          required=True, metavar="DIR")
    identify.add_argument("--top", type=whole(1), default=5, metavar="K")
    identify.add_argument("--dpi", type=number(250, 1500, "dpi"), default=None)
    identify.set_defaults(handler=identify_command)


def extract_command(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.images:
        try:
            template = load_template(path, args.dpi)
        except BiometricInputError as error:
            _say(str(error))
            bad += 1
            continue
        args.out_dir.mkdir(parents=True, exist_ok=True)  # made for the first record: none if every image is bad
        (args.out_dir / f"{path.stem}.iso").write_bytes(write_record(template))
    return EXIT_BAD_INPUT if bad else EXIT_OK


def match_pairs_command(args: argparse.Namespace) -> int:
    from biometrics import match

    try:
        rows = _read_pairs(args.pairs)
    except BiometricInputError as error:
        _say(str(error))
        return EXIT_BAD_INPUT
    cache: dict[Path, match.MatchTemplate | BiometricInputError] = {}

    def prepared(path: Path) -> match.MatchTemplate:
        if path not in cache:
            try:
                cache[path] = match.prepare(load_template(path, args.dpi))
            except BiometricInputError as error:
                cache[path] = error
        found = cache[path]
        if isinstance(found, BiometricInputError):
            raise found
        return found

    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(["a", "b", "score", "decision"])
    bad = 0
    for line, a, b in rows:
        try:
            path_a, path_b = _beside(args.pairs, a), _beside(args.pairs, b)
            score = match.similarity(prepared(path_a), prepared(path_b))
        except BiometricInputError as error:
            _say(f"{args.pairs} line {line}: {error}")
            bad += 1
            continue
        writer.writerow([a, b, f"{score:.4f}", "match" if score >= match.THRESHOLD else "no_match"])
    if args.out is None:
        sys.stdout.write(output.getvalue())
    else:
        args.out.write_text(output.getvalue())
    return EXIT_BAD_INPUT if bad else EXIT_OK


def identify_command(args: argparse.Namespace) -> int:
    from biometrics import match

    try:
        probe = load_template(args.probe, args.dpi)
    except BiometricInputError as error:
        _say(str(error))
        return EXIT_BAD_INPUT
    if not args.gallery.is_dir():
        _say(f"{args.gallery}: not a folder; give the folder holding the gallery's .iso records or images")
        return EXIT_BAD_INPUT
    templates, ids, bad = [], [], 0
    for path in sorted(args.gallery.iterdir()):
        if path.suffix.lower() not in RECORD_SUFFIXES | IMAGE_SUFFIXES:
            continue
        try:
            templates.append(load_template(path, args.dpi))
        except BiometricInputError as error:
            _say(str(error))
            bad += 1
            continue
        ids.append(path.stem)
    gallery = match.Gallery(templates, ids)
    for rank, (identity, score) in enumerate(gallery.identify(probe, top=args.top), start=1):
        record = {"rank": rank, "id": identity, "score": round(score, 4), "match": score >= match.THRESHOLD}
        print(json.dumps(record))
    return EXIT_BAD_INPUT if bad else EXIT_OK


def load_template(path: Path, dpi: float | None = None) -> FingerprintTemplate:
    """A template from an ISO/IEC 19794-2 record or from an image (extracted); bad files raise BiometricInputError."""
    if path.suffix.lower() in RECORD_SUFFIXES:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BiometricInputError(str(path), f"cannot be read ({error.strerror or error})") from error
        return read_record(data, str(path))
    from biometrics.extract import extract
    from biometrics.images import load_fingerprint_image

    if not path.exists():
        raise BiometricInputError(str(path), "no such file")
    with warnings.catch_warnings():  # Pillow warns on damaged headers; the one line the person sees is ours
        warnings.simplefilter("ignore")
        pixels, resolution = load_fingerprint_image(path, dpi)
    return extract(pixels, resolution).template


def _read_pairs(path: Path) -> list[tuple[int, str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise BiometricInputError(str(path), f"cannot be read as a text CSV ({error})") from error
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["a", "b"]:
        raise BiometricInputError(str(path), f"the first line must be the header a,b (found {header!r})")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            rows.append((line, row[0].strip() if row else "", ""))  # reported when scored: an empty path
            continue
        rows.append((line, row[0].strip(), row[1].strip()))
    return rows


def _beside(pairs: Path, name: str) -> Path:
    """A path from the pairs file: as given if it exists, else relative to the pairs file's folder."""
    if not name:
        raise BiometricInputError(str(pairs), "a row needs two paths a,b; one is empty")
    given = Path(name)
    if given.is_absolute() or given.exists():
        return given
    return pairs.parent / given


def _say(line: str) -> None:
    print(line, file=sys.stderr)
