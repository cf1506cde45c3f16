"""Fuzz every document parser: arbitrary bytes become text in several ways, and only DocumentError
may come out of parse_document, parse_typed_jmbg and parse_jmbg.

    PYTHONPATH=. nice -n 10 .venv/bin/python scripts/fuzz_documents.py -max_total_time=180  # atheris (libFuzzer)
    PYTHONPATH=. nice -n 10 .venv/bin/python scripts/fuzz_documents.py --hypothesis 20000   # without atheris

With atheris the parser modules are imported instrumented, so libFuzzer follows their branches.

Seeds: valid and corrupted documents from simulator.documents, so the fuzzer starts inside the
formats and mutates towards their edges. The last line printed is the number of inputs run.
"""

from __future__ import annotations

import datetime as dt
import random
import sys

_TODAY = dt.date(2026, 10, 4)
_runs = 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "--hypothesis":
        return _hypothesis_fuzz(int(argv[2]) if len(argv) > 2 else 10_000)
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: falling back to --hypothesis", file=sys.stderr)
        return _hypothesis_fuzz(10_000)
    with atheris.instrument_imports(include=["biometrics"]):
        import biometrics.documents  # noqa: F401  (instrumented before check_one imports it)
    corpus_dir = _write_seed_corpus()
    atheris.Setup([*argv, corpus_dir], _one_input)
    try:
        atheris.Fuzz()
    finally:
        print(f"inputs run: {_runs}")
    return 0


def check_one(data: bytes) -> None:
    """Run every parser on `data` decoded in several ways; anything but DocumentError is a bug."""
    from biometrics.documents import (
        DocumentError,
        parse_document,
        parse_jmbg,
        parse_typed_jmbg,
    )

    global _runs
    _runs += 1
    texts = {data.decode("utf-8", "replace"), data.decode("latin-1"), data.decode("ascii", "ignore").upper()}
    for text in texts:
        for parse in (parse_document, parse_typed_jmbg, parse_jmbg):
            for today in (None, _TODAY):
                try:
                    parse(text, today)
                except DocumentError:
                    pass


def _one_input(data: bytes) -> None:
    check_one(data)
    if _runs % 100_000 == 0:
        print(f"inputs run: {_runs}", flush=True)


def _seeds() -> list[bytes]:
    from simulator.documents import (
        barcode,
        corrupted,
        id_card,
        passport,
        synthetic_person,
    )

    rng = random.Random(2026)
    seeds: list[bytes] = []
    for _ in range(20):
        person = synthetic_person(rng, number_length=rng.choice((8, 9, 11)))
        for document in (id_card(person), passport(person), barcode(person), barcode(person, "BBD1", "DL")):
            seeds.append(document.text.encode())
            if document.label in ("id_card", "passport"):
                seeds.append(corrupted(rng, document).text.encode())
        seeds.append(person.jmbg.digits.encode())
    return seeds


def _write_seed_corpus() -> str:
    import tempfile
    from pathlib import Path

    directory = Path(tempfile.mkdtemp(prefix="fuzz_documents_"))
    for index, seed in enumerate(_seeds()):
        (directory / f"seed{index:03d}").write_bytes(seed)
    return str(directory)


def _hypothesis_fuzz(examples: int) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = _seeds()
    mutated = st.builds(
        lambda seed, at, junk: seed[:at] + junk + seed[at + len(junk) :],
        st.sampled_from(seeds), st.integers(0, 100), st.binary(max_size=4),
    )

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=300), mutated))
    def run(data: bytes) -> None:
        check_one(data)

    run()
    print(f"inputs run: {_runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
