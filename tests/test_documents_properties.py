"""Property tests: generated valid documents parse to their ground truth, in every line-ending
variant, and any single-character change in a field a check digit covers is refused."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biometrics.documents import DocumentError, parse_document
from simulator.documents import barcode, corrupted, id_card, passport, synthetic_person

POLLING_DAY = dt.date(2026, 10, 4)
seeds = st.integers(0, 2**32 - 1)


def lines_of(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")


@given(seeds, st.sampled_from([8, 9, 10, 12]))
def test_generated_documents_parse_to_their_ground_truth(seed: int, number_length: int) -> None:
    rng = random.Random(seed)
    person = synthetic_person(rng, number_length)
    for document in (id_card(person), passport(person), passport(person, personal_number=False),
                     barcode(person), barcode(person, "BBD1", "DL")):
        assert parse_document(document.text) == document.expected


@given(seeds, st.sampled_from(["\r", "\n", "\r\n", ""]), st.sampled_from(["", "\x02", "]L2", "  "]),
       st.sampled_from(["", "\x03", "\r\n", " \n"]), st.booleans())
def test_line_ending_variants_parse_the_same(seed: int, separator: str, prefix: str, suffix: str, lower: bool) -> None:
    person = synthetic_person(random.Random(seed))
    for document in (id_card(person), passport(person)):
        text = separator.join(lines_of(document.text))
        text = prefix + (text.lower() if lower else text) + suffix
        assert parse_document(text) == document.expected


# Columns covered by a check digit (line index, first column, end column), and the digits themselves.
TD1_CHECKED = [(0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 30)]
TD3_CHECKED = [(1, 0, 10), (1, 13, 20), (1, 21, 44)]
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<"


def value(char: str) -> int:
    return 0 if char == "<" else int(char, 36)


@given(seeds, st.booleans(), st.data())
@settings(max_examples=300)
def test_any_single_character_change_in_a_checked_field_is_refused(seed: int, td1: bool, data: st.DataObject) -> None:
    person = synthetic_person(random.Random(seed))
    document = id_card(person) if td1 else passport(person)
    lines = lines_of(document.text)
    row, start, end = data.draw(st.sampled_from(TD1_CHECKED if td1 else TD3_CHECKED))
    column = data.draw(st.integers(start, end - 1))
    old = lines[row][column]
    # 7-3-1 digits cannot see a change by a multiple of 10 in value ("0"/"A"/"K"/"U"/"<"): left out.
    new = data.draw(st.sampled_from([c for c in ALPHABET if (value(c) - value(old)) % 10 != 0]))
    lines[row] = lines[row][:column] + new + lines[row][column + 1 :]
    with pytest.raises(DocumentError):
        parse_document("\n".join(lines))


@given(seeds)
def test_corrupted_documents_name_the_field_of_their_ground_truth(seed: int) -> None:
    rng = random.Random(seed)
    person = synthetic_person(rng, rng.choice([9, 11]))
    for document in (id_card(person), passport(person)):
        bad = corrupted(rng, document)
        with pytest.raises(DocumentError) as caught:
            parse_document(bad.text, POLLING_DAY)
        assert caught.value.field == bad.expected_error_field


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_document_error(text: str) -> None:
    try:
        parse_document(text, POLLING_DAY)
    except DocumentError:
        pass
