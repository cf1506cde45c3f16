"""The auth store keeps what the law asks, and no byte of it orders the voters."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest

from firmware.auth.store import (
    DB_FILE,
    LOG_FILE,
    AuthStore,
    AuthStoreError,
    LegalRecord,
    histogram_quantile,
)

KEY = b"\x07" * 32
JMBGS = [f"{i:013d}" for i in range(1000000000000, 1000000000060)]
AT = dt.datetime(2026, 10, 4, 12, 0, tzinfo=dt.UTC)


def _voter(jmbg: str) -> dict[str, object]:
    """Each voter's figures are a function of the voter, so any order gives the same final content."""
    n = int(jmbg[-2:])
    return {"sex": "MF"[n % 2], "age": 18 + n, "attempts": 1 + n % 3, "seconds": 8.0 + n}


def _run(directory: Path, order: list[str], close: bool = True) -> bytes:
    store = AuthStore.create(directory, KEY, JMBGS)
    store.set_polls("opened_at", AT)
    for jmbg in order:
        store.record_authenticated(jmbg, **_voter(jmbg))  # type: ignore[arg-type]
    store.count("failures", 2)
    if close:
        store.set_polls("closed_at", AT.replace(hour=19))
    store.close()
    return (directory / DB_FILE).read_bytes()


def test_the_same_authentications_in_another_order_give_a_byte_identical_store(tmp_path: Path) -> None:
    chosen = JMBGS[5:45]
    orders = [list(chosen), list(reversed(chosen)), random.Random(3).sample(chosen, len(chosen))]
    files = [_run(tmp_path / str(i), order) for i, order in enumerate(orders)]
    assert files[0] == files[1] == files[2]
    journal = tmp_path / "0" / (DB_FILE + "-journal")
    assert not journal.exists() or set(journal.read_bytes()) <= {0}


def test_during_the_day_only_the_last_visit_depends_on_the_order(tmp_path: Path) -> None:
    """Before the close the last_visit slot names the latest visit (for the committee after a power cut);
    two orders that end with the same voter are byte-identical, and the slot goes at the close."""
    chosen = JMBGS[5:45]
    last = chosen[-1]
    shuffled = random.Random(5).sample(chosen[:-1], len(chosen) - 1) + [last]
    a = _run(tmp_path / "a", list(chosen), close=False)
    b = _run(tmp_path / "b", shuffled, close=False)
    c = _run(tmp_path / "c", list(reversed(chosen)), close=False)
    assert a == b and a != c
    store = AuthStore(tmp_path / "a", KEY)
    slot = store.last_visit()
    assert slot is not None and (slot.number, slot.verdict, slot.pseudonym) == (40, "authenticated",
                                                                                 store.pseudonym(last))
    store.set_polls("closed_at", AT.replace(hour=19))
    assert store.last_visit() is None
    store.close()


def test_the_store_holds_no_jmbg_and_the_log_no_voter(tmp_path: Path) -> None:
    _run(tmp_path, JMBGS[:10])
    data = (tmp_path / DB_FILE).read_bytes()
    assert not any(j.encode() in data for j in JMBGS)
    lines = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert lines == [{"kind": "polls.opened", "at": AT.isoformat()},
                     {"kind": "polls.closed", "at": AT.replace(hour=19).isoformat()}]


def test_counters_sum_the_authentications_by_sex_age_attempts_and_duration(tmp_path: Path) -> None:
    store = AuthStore.create(tmp_path, KEY, JMBGS)
    store.record_authenticated(JMBGS[0], sex="F", age=70, attempts=2, seconds=12.0)
    store.record_authenticated(JMBGS[1], sex="M", age=25, attempts=1, seconds=3.0)
    c = store.counters()
    assert (c["authenticated"], c["sex.F"], c["sex.M"], c["age.65"], c["age.18"]) == (2, 1, 1, 1, 1)
    assert (c["attempts.1"], c["attempts.2"], c["duration.0"], c["duration.2"]) == (1, 1, 1, 1)
    assert store.state_of(JMBGS[0]) == "A" and store.state_of(JMBGS[2]) == "N"
    assert store.state_of("9999999999999") is None


def test_a_voter_is_authenticated_once(tmp_path: Path) -> None:
    store = AuthStore.create(tmp_path, KEY, JMBGS)
    store.record_authenticated(JMBGS[0], sex="F", age=40, attempts=1, seconds=9.0)
    with pytest.raises(AuthStoreError, match="authenticated already"):
        store.record_authenticated(JMBGS[0], sex="F", age=40, attempts=1, seconds=9.0)
    assert store.counters()["authenticated"] == 1


def test_the_reidentification_register_keeps_name_and_time_of_voting(tmp_path: Path) -> None:
    store = AuthStore.create(tmp_path, KEY, JMBGS)
    late = LegalRecord("reidentified", AT + dt.timedelta(hours=2), {"name": "ANA BEGIC", "register_number": 7})
    early = LegalRecord("reidentified", AT, {"name": "IVAN JURIC", "register_number": 3})
    store.record_authenticated(JMBGS[1], sex="F", age=40, attempts=3, seconds=60.0, reidentified=late)
    store.record_authenticated(JMBGS[2], sex="M", age=40, attempts=3, seconds=60.0, reidentified=early)
    assert store.legal_records("reidentified") == [early, late]
    assert store.counters()["reidentified"] == 2 and store.counters()["authenticated"] == 0
    assert store.voters_authenticated() == 2


def test_the_log_refuses_voter_data(tmp_path: Path) -> None:
    store = AuthStore.create(tmp_path, KEY, JMBGS)
    with pytest.raises(AuthStoreError, match="no voter data"):
        store.log_event("voter.done", {"jmbg": JMBGS[0]})


def test_a_store_is_created_once(tmp_path: Path) -> None:
    AuthStore.create(tmp_path, KEY, JMBGS).close()
    with pytest.raises(AuthStoreError, match="exists already"):
        AuthStore.create(tmp_path, KEY, JMBGS)


def test_histogram_quantiles_interpolate_inside_the_bin() -> None:
    edges = (10, 20, 30)
    assert histogram_quantile([0, 4, 0, 0], 0.5, edges) == 15.0
    assert histogram_quantile([2, 2, 0, 0], 0.5, edges) == 10.0
    assert histogram_quantile([0, 0, 0, 5], 0.95, edges) == 30.0
    assert histogram_quantile([0, 0, 0, 0], 0.5, edges) is None
