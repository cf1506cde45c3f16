"""The authentication report: figures from the store, rendered and as JSON in the five languages."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from PIL import Image

from config.election import Language, load_election
from firmware.auth.register import DeletionRecord
from firmware.auth.report import AuthReport, build_auth_report
from firmware.auth.store import AuthStore, LegalRecord
from firmware.common.reports import (
    build_header,
    render_png,
    render_raster,
    report_to_json,
)

ELECTION = load_election(Path(__file__).resolve().parents[1] / "config/elections/municipal-2024-sample.json")
AT = dt.datetime(2026, 10, 4, 9, 30, tzinfo=dt.UTC)
JMBGS = [f"{i:013d}" for i in range(10)]


def _report(tmp_path: Path, language: str = "bs") -> AuthReport:
    store = AuthStore.create(tmp_path, b"\x02" * 32, JMBGS)
    store.set_polls("opened_at", AT)
    for i, seconds in enumerate((8.0, 12.0, 14.0, 26.0)):
        store.record_authenticated(JMBGS[i], sex="MF"[i % 2], age=30 + 10 * i, attempts=1 + i % 2, seconds=seconds)
    store.record_authenticated(JMBGS[5], sex="F", age=70, attempts=3, seconds=70.0,
                               reidentified=LegalRecord("reidentified", AT, {"name": "ANA BEGIC", "register_number": 6}))
    store.count("failures")
    store.record_impersonation(LegalRecord("impersonation", AT, {"what": "already_authenticated",
                                                                  "name": "IVAN JURIC", "register_number": 1}))
    store.set_polls("closed_at", AT + dt.timedelta(hours=10))
    header = build_header(ELECTION, device_id="BB-T-1", software_version="0.1", software_hash="ab" * 32,
                          device_key_fingerprint="ABCD EF01", printed_at=AT + dt.timedelta(hours=10))
    header = dataclasses.replace(header, language=language)
    deletion = DeletionRecord(AT + dt.timedelta(hours=10), 10, 9, "cd" * 32, 0, True)
    report = build_auth_report(header, store, registered_voters=10, deletion=deletion, remarks=("Bez primjedbi",))
    store.close()
    return report


def test_the_report_carries_the_stores_figures(tmp_path: Path) -> None:
    r = _report(tmp_path)
    assert (r.authenticated, r.reidentified, r.failures, r.impersonation_attempts) == (4, 1, 1, 1)
    assert (r.voters_admitted, r.turnout_percent) == (5, 50.0)
    assert r.by_sex == {"M": 2, "F": 3}
    assert r.by_age == {"18-29": 0, "30-44": 2, "45-64": 2, "65+": 1}
    assert r.attempts == {"1": 2, "2": 2, "3": 0}
    # 8, 12, 14, 26, 70 s: the 2.5th of 5 lies 1.5 of 2 into the 10-15 s bin -> 10 + 5 * 0.75 = 13.75
    assert r.duration_median_s == 13.8
    assert [p.name for p in r.reidentifications] == ["ANA BEGIC"]
    assert [(p.name, p.what) for p in r.impersonations] == [("IVAN JURIC", "already_authenticated")]


def test_the_json_names_the_report_and_keeps_the_deletion_record(tmp_path: Path) -> None:
    data = report_to_json(_report(tmp_path))
    assert data["report"] == "auth_report"
    assert data["deletion"]["records"] == 10 and data["deletion"]["sensor_templates_after"] == 0
    assert data["opened_at"] == AT.isoformat()


@pytest.mark.parametrize("lang", [lang.value for lang in Language])
def test_the_report_renders_in_every_language(tmp_path: Path, lang: str) -> None:
    report = _report(tmp_path, lang)
    path = render_png(report, ELECTION, tmp_path / f"auth-{lang}.png", 576)
    with Image.open(path) as image:
        assert image.width == 576 and image.height > 1500
    assert render_raster(report, ELECTION, 384).width == 384
