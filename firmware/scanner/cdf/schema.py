"""Validation of the two exports against NIST's own JSON schemas (config/nist_cdf/, unchanged copies).

Both schemas declare JSON Schema draft-04; they are checked with jsonschema's Draft4Validator and its
format checker. Every problem is reported with the JSON path of the value (``$.Election[0].Contest[1]``)
and, under a ``oneOf`` (contests, selections, GpUnits), with the closest alternative's own error.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

import config
from firmware.common.transmission.documents import CVR_REPORT, ELECTION_REPORT

SCHEMA_DIR = Path(config.__file__).resolve().parent / "nist_cdf"
SCHEMA_FILES = {ELECTION_REPORT: "NIST_V2_election_results_reporting.json",
                CVR_REPORT: "NIST_V0_cast_vote_records.json"}
MAX_PROBLEMS = 20  # a broken builder repeats one error per record: the first twenty say what it is


class SchemaError(ValueError):
    """A document that NIST's schema refuses: the message lists the JSON paths and what is wrong."""


def schema_problems(kind: str, document: Any) -> list[str]:
    """What NIST's schema for `kind` (ELECTION_REPORT or CVR_REPORT) finds wrong in `document`, each
    as ``$.path: message``; [] when it validates."""
    validator = _validator(kind)
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(_describe(error))
        if len(problems) == MAX_PROBLEMS:
            problems.append(f"... (first {MAX_PROBLEMS} problems shown)")
            break
    return problems


def validate(kind: str, document: Any) -> None:
    """Raise SchemaError naming every JSON path NIST's schema refuses."""
    problems = schema_problems(kind, document)
    if problems:
        raise SchemaError(f"the {kind} does not validate against NIST's schema {SCHEMA_FILES[kind]}:\n  "
                          + "\n  ".join(problems))


@cache
def _validator(kind: str) -> jsonschema.Draft4Validator:
    if kind not in SCHEMA_FILES:
        raise SchemaError(f"no NIST schema for document kind {kind!r}; one of {sorted(SCHEMA_FILES)}")
    path = SCHEMA_DIR / SCHEMA_FILES[kind]
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: NIST's schema cannot be read ({exc}); reinstall the software") from None
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def _describe(error: ValidationError) -> str:
    return f"{_closest(error).json_path}: {_closest(error).message}"


def _closest(error: ValidationError) -> ValidationError:
    """Under a oneOf/anyOf, the error of the alternative that came closest (fewest errors, then the
    deepest): for a contest with a bad count that is the CandidateContest branch's own error, not
    "is not valid under any of the given schemas" over the whole contest."""
    if not error.context:
        return error
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    closest = min(branches.values(), key=lambda errs: (len(errs), -max(len(e.absolute_path) for e in errs)))
    return _closest(max(closest, key=lambda e: len(e.absolute_path)))
