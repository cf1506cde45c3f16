"""Validation of the two exports against NIST's own JSON schemas (config/nist_cdf/, unchanged copies).

Both schemas declare JSON Schema draft-04. A document is first checked with jsonschema-rs (compiled, a
CVR report of 2,000 ballots in milliseconds where the pure-Python validator takes seconds, which a box
closing its polls should not spend); only a document it refuses goes through jsonschema's Draft4Validator
and its format checker, which names the problems. Every problem is reported with the JSON path of the value (``$.Election[0].Contest[1]``)
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
    fast = _fast_validator(kind)
    if fast is not None and fast.is_valid(document):
        return []
    validator = _validator(kind)
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(_describe(error))
        if len(problems) == MAX_PROBLEMS:
            problems.append(f"... (first {MAX_PROBLEMS} problems shown)")
            break
    return problems


def reference_problems(kind: str, document: Any) -> list[str]:
    """What JSON Schema cannot check: every ``@id`` unique, and every reference the schema marks with
    ``refTypes`` (GpUnitId, PartyIds, ContestSelectionId...) naming an ``@id`` of the document whose
    ``@type`` is one of those the schema allows there."""
    schema = _schema(kind)
    objects: dict[str, str] = {}
    problems: list[str] = []
    refs: list[tuple[str, str, tuple[str, ...]]] = []
    _collect(document, "$", schema["definitions"], objects, refs, problems)
    for where, ref, allowed in refs:
        if ref not in objects:
            problems.append(f"{where}: {ref!r} is the @id of nothing")
        elif allowed and objects[ref] not in allowed:
            problems.append(f"{where}: {ref!r} is a {objects[ref]}, the schema allows {list(allowed)} here")
    return problems[:MAX_PROBLEMS]


def validate(kind: str, document: Any) -> None:
    """Raise SchemaError naming every JSON path NIST's schema refuses, and every broken @id reference."""
    problems = schema_problems(kind, document) or reference_problems(kind, document)
    if problems:
        raise SchemaError(f"the {kind} does not validate against NIST's schema {SCHEMA_FILES[kind]}:\n  "
                          + "\n  ".join(problems))


@cache
def _schema(kind: str) -> dict[str, Any]:
    if kind not in SCHEMA_FILES:
        raise SchemaError(f"no NIST schema for document kind {kind!r}; one of {sorted(SCHEMA_FILES)}")
    path = SCHEMA_DIR / SCHEMA_FILES[kind]
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: NIST's schema cannot be read ({exc}); reinstall the software") from None
    jsonschema.Draft4Validator.check_schema(schema)
    return schema


@cache
def _fast_validator(kind: str) -> Any:
    """jsonschema-rs's draft-04 validator, formats checked; None where its wheel is not installed."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.Draft4Validator(_schema(kind), validate_formats=True)


@cache
def _validator(kind: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_schema(kind), format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def _collect(node: Any, where: str, definitions: dict[str, Any], objects: dict[str, str],
             refs: list[tuple[str, str, tuple[str, ...]]], problems: list[str]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _collect(item, f"{where}[{i}]", definitions, objects, refs, problems)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("@type")
    if "@id" in node:
        if node["@id"] in objects:
            problems.append(f"{where}.@id: {node['@id']!r} is the @id of another object too")
        objects[node["@id"]] = str(kind)
    properties = definitions.get(kind, {}).get("properties", {}) if isinstance(kind, str) else {}
    for key, value in node.items():
        spec = properties.get(key, {})
        allowed = spec.get("refTypes") or spec.get("items", {}).get("refTypes")
        if allowed is not None:
            for i, ref in enumerate(value if isinstance(value, list) else [value]):
                refs.append((f"{where}.{key}" + (f"[{i}]" if isinstance(value, list) else ""), ref, tuple(allowed)))
        else:
            _collect(value, f"{where}.{key}", definitions, objects, refs, problems)


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
