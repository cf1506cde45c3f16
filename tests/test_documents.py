"""parse_document: ICAO 9303 specimens, every check digit, reader line-ending quirks, BiH JMBG in the
optional data, long TD1 document numbers, the assumed barcode records, and what is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from biometrics.documents import (
    DocumentError,
    DocumentKind,
    DocumentWarning,
    check_digit,
    parse_document,
)

POLLING_DAY = dt.date(2026, 10, 4)

# ICAO Doc 9303 specimens (part 4 appendix for TD3, part 5 for TD1), check digits as printed there.
TD3_SPECIMEN = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
TD1_SPECIMEN = ("I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")
# A 10-character document number (9303-5 4.2.4): "<" at position 15, "07" = "0" + check digit 7.
TD1_LONG_NUMBER = ("IDUTO123456789<07<<<<<<<<<<<<<", "8601012M3001019UTO<<<<<<<<<<<6", "SPECIMEN<<JANE<<<<<<<<<<<<<<<<")
# A BiH ID card as ballotbox expects it: JMBG 0101990170003 in the optional data of line 1.
BIH_CARD = ("IDBIH1E181TKT610101990170003<<", "9001011M3105205BIH<<<<<<<<<<<7", "HADZIC<<AMIR<<<<<<<<<<<<<<<<<<")


def test_check_digits_of_the_icao_specimens() -> None:
    assert check_digit("L898902C3") == 6
    assert check_digit("740812") == 2
    assert check_digit("120415") == 9
    assert check_digit("ZE184226B<<<<<") == 1
    assert check_digit("D23145890") == 7
    assert check_digit("<<<<") == 0


def test_the_icao_passport_specimen() -> None:
    identity = parse_document("\n".join(TD3_SPECIMEN))
    assert identity.kind is DocumentKind.PASSPORT
    assert identity.source_format == "TD3"
    assert identity.document_number == "L898902C3"
    assert (identity.surname, identity.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert identity.birth_date == dt.date(1974, 8, 12)
    assert identity.expiry == dt.date(2012, 4, 15)
    assert identity.sex == "F"
    assert (identity.issuing_state, identity.nationality) == ("UTO", "UTO")
    assert identity.jmbg is None  # personal number ZE184226B is not a JMBG
    assert identity.warnings == ()


def test_the_icao_id_card_specimen() -> None:
    identity = parse_document("\r".join(TD1_SPECIMEN))
    assert identity.kind is DocumentKind.ID_CARD
    assert identity.document_number == "D23145890"
    assert identity.birth_date == dt.date(1974, 8, 12)
    assert identity.given_names == "ANNA MARIA"
    assert identity.lookup_keys() == [("document_number", "D23145890")]


def test_a_long_td1_document_number_continues_in_the_optional_data() -> None:
    identity = parse_document("\n".join(TD1_LONG_NUMBER))
    assert identity.document_number == "1234567890"
    assert identity.birth_date == dt.date(1986, 1, 1)
    assert identity.sex == "M"


def test_a_long_td1_number_with_a_wrong_check_digit_names_the_whole_number() -> None:
    line1 = TD1_LONG_NUMBER[0][:16] + "8" + TD1_LONG_NUMBER[0][17:]
    with pytest.raises(DocumentError) as caught:
        parse_document("\n".join((line1, *TD1_LONG_NUMBER[1:])))
    assert caught.value.field == "document number"
    assert caught.value.value == "1234567890"
    assert "has check digit 8 in the MRZ, but its characters give 7" in str(caught.value)


def test_a_bih_id_card_carries_the_jmbg_in_the_optional_data() -> None:
    identity = parse_document("\r\n".join(BIH_CARD), POLLING_DAY)
    assert identity.jmbg is not None and identity.jmbg.digits == "0101990170003"
    assert identity.document_number == "1E181TKT6"
    assert identity.birth_date == dt.date(1990, 1, 1)
    assert identity.expiry == dt.date(2031, 5, 20)
    assert identity.lookup_keys() == [("jmbg", "0101990170003"), ("document_number", "1E181TKT6")]


def test_a_bih_card_whose_optional_data_is_13_digits_but_no_jmbg_is_refused() -> None:
    # Change the JMBG's own check digit and repair the composite: only the JMBG check can see it.
    line1 = BIH_CARD[0][:27] + "4" + BIH_CARD[0][28:]
    line2 = BIH_CARD[1][:29]
    line2 += str(check_digit(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]))
    with pytest.raises(DocumentError) as caught:
        parse_document("\n".join((line1, line2, BIH_CARD[2])))
    assert caught.value.field == "JMBG in the MRZ optional data"
    assert caught.value.value == "0101990170004"


def test_a_mrz_birth_date_that_differs_from_the_jmbg_is_refused() -> None:
    line2 = "9001022" + BIH_CARD[1][7:29]  # 2 January 1990 (check digit 2 for 900102)
    line2 += str(check_digit(BIH_CARD[0][5:30] + line2[0:7] + line2[8:15] + line2[18:29]))
    with pytest.raises(DocumentError, match="differs from the JMBG's"):
        parse_document("\n".join((BIH_CARD[0], line2, BIH_CARD[2])))


@pytest.mark.parametrize(
    "text",
    [
        "\r".join(BIH_CARD),
        "\n".join(BIH_CARD),
        "\r\n".join(BIH_CARD) + "\r\n",
        "".join(BIH_CARD),  # 90 characters with no separator
        "  " + "\n".join(BIH_CARD).lower() + " \t\n\n",
        "\x02" + "\r".join(BIH_CARD) + "\x03",
        "]L2" + "\r".join(BIH_CARD) + "\r\n",
        "\n\n" + "\r\n\r\n".join(f" {line} " for line in BIH_CARD),
    ],
    ids=["CR", "LF", "CRLF", "concatenated", "lowercase+whitespace", "STX/ETX", "AIM ]L2", "blank lines"],
)
def test_reader_quirks_give_the_same_identity(text: str) -> None:
    assert parse_document(text, POLLING_DAY) == parse_document("\n".join(BIH_CARD), POLLING_DAY)


def test_a_concatenated_passport_of_88_characters_parses() -> None:
    assert parse_document("".join(TD3_SPECIMEN)).document_number == "L898902C3"


@pytest.mark.parametrize(
    ("line", "column", "field", "expected"),
    [
        (1, 9, "document number", 6),
        (1, 19, "date of birth", 2),
        (1, 27, "date of expiry", 9),
        (1, 42, "personal number (optional data)", 1),
        (1, 43, "composite (whole MRZ)", 0),
    ],
)
def test_every_td3_check_digit_is_verified(line: int, column: int, field: str, expected: int) -> None:
    lines = list(TD3_SPECIMEN)
    wrong = str((expected + 3) % 10)
    lines[line] = lines[line][:column] + wrong + lines[line][column + 1 :]
    with pytest.raises(DocumentError) as caught:
        parse_document("\n".join(lines))
    assert caught.value.field == field
    assert f"has check digit {wrong} in the MRZ, but its characters give {expected}" in str(caught.value)
    assert str(caught.value).endswith("-- read the document again, or type the JMBG")


@pytest.mark.parametrize(
    ("line", "column", "field", "expected"),
    [(0, 14, "document number", 7), (1, 6, "date of birth", 2), (1, 14, "date of expiry", 9),
     (1, 29, "composite (whole MRZ)", 6)],
)
def test_every_td1_check_digit_is_verified(line: int, column: int, field: str, expected: int) -> None:
    lines = list(TD1_SPECIMEN)
    wrong = str((expected + 5) % 10)
    lines[line] = lines[line][:column] + wrong + lines[line][column + 1 :]
    with pytest.raises(DocumentError) as caught:
        parse_document("\n".join(lines))
    assert caught.value.field == field


def test_a_changed_character_is_not_corrected_even_when_ocr_would_guess_it() -> None:
    # "O" for "0" in the birth date: refused (not a date), never read as 740812.
    line2 = "74O8122" + TD1_SPECIMEN[1][7:]
    with pytest.raises(DocumentError):
        parse_document("\n".join((TD1_SPECIMEN[0], line2, TD1_SPECIMEN[2])))


def test_a_check_digit_that_is_a_letter_is_refused_with_the_expected_digit() -> None:
    line2 = TD3_SPECIMEN[1][:9] + "G" + TD3_SPECIMEN[1][10:]
    with pytest.raises(DocumentError, match=r"has 'G' for its check digit, not a digit \(expected 6\)"):
        parse_document("\n".join((TD3_SPECIMEN[0], line2)))


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("\n".join((TD1_SPECIMEN[0], TD1_SPECIMEN[1][:29], TD1_SPECIMEN[2])), "MRZ", "30 + 29 + 30"),
        ("\n".join(TD1_SPECIMEN[:2]), "MRZ", "30 + 30"),
        ("\n".join((TD1_SPECIMEN[1], TD1_SPECIMEN[0], TD1_SPECIMEN[2])), "MRZ line 1", "out of order"),
        ("\n".join(reversed(TD3_SPECIMEN)), "MRZ line 1", "out of order"),
        ("\n".join((TD1_SPECIMEN[0], TD1_SPECIMEN[1], "ERIKSSON<<ANNA MARIA<<<<<<<<<<")), "MRZ line 3", "position 15"),
        ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE18422", "MRZ", "36 + 35"),
        ("", "scan", "is empty"),
        ("\x02\x03", "scan", "is empty"),
        ("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n" + TD3_SPECIMEN[1], "MRZ line 1", "or it is a visa"),
        ("x" * 5000, "scan", "5000 characters"),
    ],
)
def test_malformed_scans_are_refused_naming_the_field(text: str, field: str, problem: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(text)
    assert caught.value.field == field
    assert problem in str(caught.value)


def test_an_expired_document_is_accepted_with_a_warning() -> None:
    identity = parse_document("\n".join(TD3_SPECIMEN), POLLING_DAY)
    assert identity.expired is True
    assert identity.warnings == (DocumentWarning.EXPIRED,)
    assert parse_document("\n".join(TD3_SPECIMEN)).expired is False  # no day given: not judged


def test_a_document_expiring_on_the_polling_day_is_not_expired() -> None:
    assert parse_document("\n".join(TD3_SPECIMEN), dt.date(2012, 4, 15)).expired is False
    assert parse_document("\n".join(TD3_SPECIMEN), dt.date(2012, 4, 16)).expired is True


def test_a_sex_that_differs_from_the_jmbg_is_a_warning() -> None:
    line2 = BIH_CARD[1][:7] + "F" + BIH_CARD[1][8:]  # sex is outside every check digit
    identity = parse_document("\n".join((BIH_CARD[0], line2, BIH_CARD[2])))
    assert identity.sex == "F"
    assert identity.jmbg is not None and identity.jmbg.sex == "M"
    assert identity.warnings == (DocumentWarning.SEX_DIFFERS_FROM_JMBG,)


def test_a_two_digit_birth_year_without_a_jmbg_is_placed_before_the_polling_day() -> None:
    line2 = "3001019M3001019UTO<<<<<<<<<<<"  # born 30-01-01 ... expires 2030
    line2 += str(check_digit(TD1_LONG_NUMBER[0][5:30] + line2[0:7] + line2[8:15] + line2[18:29]))
    text = "\n".join((TD1_LONG_NUMBER[0], line2, TD1_LONG_NUMBER[2]))
    assert parse_document(text, POLLING_DAY).birth_date == dt.date(1930, 1, 1)
    assert parse_document(text).birth_date == dt.date(1930, 1, 1)  # reference: expiry 2030 - 10 years


BARCODE_KV = (
    "BBKV1;KIND=ID;DOC=1E181TKT6;JMBG=0101990170003;SURNAME=Hadžić;GIVEN=Amir;BIRTH=1990-01-01;SEX=M;"
    "EXPIRY=2031-05-20;STATE=BIH"
)


def test_a_key_value_barcode_record() -> None:
    identity = parse_document(BARCODE_KV + "\r\n", POLLING_DAY)
    assert identity.kind is DocumentKind.ID_CARD
    assert identity.source_format == "BBKV1"
    assert identity.document_number == "1E181TKT6"
    assert identity.jmbg is not None and identity.jmbg.digits == "0101990170003"
    assert (identity.surname, identity.given_names) == ("Hadžić", "Amir")
    assert identity.birth_date == dt.date(1990, 1, 1)
    assert identity.expiry == dt.date(2031, 5, 20)
    assert identity.issuing_state == "BIH"
    assert identity.warnings == ()


def test_a_delimited_driving_licence_record_with_optional_fields_empty() -> None:
    identity = parse_document("]L2BBD1|DL|AB12345|0101990175005|Kovačević|Ana Marija||||\r")
    assert identity.kind is DocumentKind.DRIVING_LICENCE
    assert identity.source_format == "BBD1"
    assert identity.given_names == "Ana Marija"
    assert identity.sex == "F"  # from the JMBG
    assert identity.expiry is None
    assert identity.issuing_state is None


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (BARCODE_KV.replace(";STATE=BIH", ";STATE=BIH;STATE=BIH"), "barcode field", "appears twice"),
        (BARCODE_KV.replace("SEX=M", "SEX="), "barcode field", "is empty"),
        (BARCODE_KV + ";PHOTO=abc", "barcode field", "is not KEY=value"),
        (BARCODE_KV.replace("GIVEN=Amir;", ""), "barcode record", "lacks GIVEN"),
        (BARCODE_KV.replace("KIND=ID", "KIND=PP"), "barcode KIND", "is not ID or DL"),
        (BARCODE_KV.replace("0101990170003", "0101990170004"), "barcode JMBG", "check digit 4"),
        (BARCODE_KV.replace("BIRTH=1990-01-01", "BIRTH=1990-01-02"), "barcode BIRTH", "differs from the JMBG's"),
        (BARCODE_KV.replace("BIRTH=1990-01-01", "BIRTH=01.01.1990"), "barcode BIRTH", "YYYY-MM-DD"),
        (BARCODE_KV.replace("Hadžić", "Hadžić2"), "barcode SURNAME", "is not a name"),
        (BARCODE_KV.replace("Hadžić", "Had\x00žić"), "barcode SURNAME", "is not a name"),
        (BARCODE_KV.replace("DOC=1E181TKT6", "DOC=1e18"), "barcode DOC", "is not a document number"),
        (BARCODE_KV.replace(";SEX=M", ";SEX=X"), "barcode SEX", "is not M or F"),
        (BARCODE_KV.replace("BBKV1", "BBKV2"), "barcode format", "is not one ballotbox reads"),
        (BARCODE_KV.replace(";GIVEN", "\nGIVEN"), "barcode record", "more than one line"),
        ("BBD1|ID|AB12345|0101990170003|Begić|Emir", "barcode record", "has 5 fields"),
    ],
)
def test_barcode_records_are_parsed_strictly(text: str, field: str, problem: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(text)
    assert caught.value.field == field
    assert problem in str(caught.value)


def test_a_sex_in_the_barcode_that_differs_from_the_jmbg_is_a_warning() -> None:
    identity = parse_document(BARCODE_KV.replace("SEX=M", "SEX=F"))
    assert identity.sex == "F"
    assert identity.warnings == (DocumentWarning.SEX_DIFFERS_FROM_JMBG,)
