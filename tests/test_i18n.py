"""Message catalogues: complete, consistent, in the right language and script."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from config.election import Language
from firmware.common.i18n import (
    CATALOGUE_DIR,
    FORMAT_PREFIX,
    CatalogueError,
    MessageError,
    Messages,
    latin_message_to_cyrillic,
    placeholders,
)
from omr.types import Outcome, Reason, Verdict

LANGUAGES = [lang.value for lang in Language]


def _raw(lang: str, directory: Path = CATALOGUE_DIR) -> dict[str, str]:
    return json.loads((directory / f"{lang}.json").read_text(encoding="utf-8"))


@pytest.fixture
def catalogue_copy(tmp_path: Path) -> Path:
    for lang in LANGUAGES:
        shutil.copy(CATALOGUE_DIR / f"{lang}.json", tmp_path / f"{lang}.json")
    return tmp_path


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_catalogue_has_exactly_the_keys_of_en(lang: str) -> None:
    assert sorted(_raw(lang)) == sorted(_raw("en"))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_catalogue_loads_and_uses_the_placeholders_of_en(lang: str) -> None:
    msgs = Messages.for_language(lang)
    en = _raw("en")
    assert msgs.keys() == frozenset(en)
    for key, template in _raw(lang).items():
        assert placeholders(template) == placeholders(en[key]), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_reason_outcome_and_verdict_has_words_in_every_language(lang: str) -> None:
    msgs = Messages.for_language(lang)
    for reason in Reason:
        assert msgs.reason(reason.value).strip()
    for outcome in Outcome:
        assert msgs.outcome(outcome.value).strip()
    for verdict in Verdict:
        assert msgs.verdict(verdict.value).strip()


@pytest.mark.parametrize("lang", ["bs", "hr", "sr-Latn", "sr-Cyrl"])
def test_local_catalogues_are_translated_not_copied_from_english(lang: str) -> None:
    en, local = _raw("en"), _raw(lang)
    same = [k for k in en if not k.startswith(FORMAT_PREFIX) and en[k] == local[k]
            and not re.fullmatch(r"[{}\w %.]*", en[k])]  # "{value} s" and similar may coincide
    assert same == []


def test_panel_texts_of_the_bosnian_catalogue() -> None:
    t = Messages.for_language("bs").t
    assert t("panel.insert_ballot") == "Ubacite glasački listić"
    assert t("panel.verdict.valid") == "VAŽEĆI"
    assert t("panel.verdict.invalid") == "NEVAŽEĆI"
    assert t("panel.verdict.foreign") == "Listić nije sa ovog biračkog mjesta – pozovite predsjednika biračkog odbora"
    assert t("panel.verdict.unreadable") == "Ubacite listić ponovo"
    assert t("panel.ask_cast_or_return") == "Ubaci / Vrati"


def test_languages_keep_their_own_words() -> None:
    def t(lang: str, key: str) -> str:
        return Messages.for_language(lang).t(key)

    assert t("bs", "report.label.municipality") == "Općina"
    assert t("hr", "report.label.municipality") == "Općina"
    assert t("sr-Latn", "report.label.municipality") == "Opština"
    assert t("sr-Cyrl", "report.label.municipality") == "Општина"
    assert t("bs", "report.zero.title") == "POČETNI IZVJEŠTAJ"
    assert t("hr", "report.zero.title") == "POČETNO IZVJEŠĆE"
    assert t("sr-Latn", "report.zero.title") == "POČETNI IZVJEŠTAJ"
    assert t("sr-Cyrl", "report.zero.title") == "ПОЧЕТНИ ИЗВЈЕШТАЈ"
    assert t("hr", "panel.polls_paused").startswith("Glasovanje")  # Croatian: glasovanje, not glasanje
    assert t("bs", "panel.polls_paused").startswith("Glasanje")
    assert "izborno povjerenstvo" in t("hr", "report.zero.not_zero")  # the CEC's Croatian name
    assert "izbornu komisiju" in t("bs", "report.zero.not_zero")


def test_serbian_cyrillic_is_the_transliteration_of_serbian_latin() -> None:
    latn, cyrl = _raw("sr-Latn"), _raw("sr-Cyrl")
    for key, text in latn.items():
        expected = text if key.startswith(FORMAT_PREFIX) else latin_message_to_cyrillic(text)
        assert cyrl[key] == expected, key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_catalogue_is_written_in_one_script(lang: str) -> None:
    for key, text in _raw(lang).items():
        if key.startswith(FORMAT_PREFIX):
            continue
        prose = re.sub(r"\{[^{}]*\}", "", text)
        if lang == "sr-Cyrl":
            assert not re.search(r"[A-Za-zČĆĐŠŽčćđšž]", prose), key
        else:
            assert not re.search(r"[\u0400-\u04FF]", prose), key


def test_transliteration_keeps_placeholders() -> None:
    assert latin_message_to_cyrillic("Uređaji sa greškom: {count} – pozovite") == "Уређаји са грешком: {count} – позовите"


def test_missing_key_is_a_load_error_naming_file_and_key(catalogue_copy: Path) -> None:
    data = _raw("hr", catalogue_copy)
    del data["panel.box_full"]
    (catalogue_copy / "hr.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogueError) as err:
        Messages.for_language("hr", catalogue_copy)
    assert "hr.json" in str(err.value) and "'panel.box_full'" in str(err.value)


def test_unknown_key_is_a_load_error(catalogue_copy: Path) -> None:
    data = _raw("bs", catalogue_copy)
    data["panel.insert_balot"] = "Ubacite"
    (catalogue_copy / "bs.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"bs\.json: key 'panel\.insert_balot' is not in en\.json"):
        Messages.for_language("bs", catalogue_copy)


def test_reference_without_a_reason_code_is_a_load_error(catalogue_copy: Path) -> None:
    data = _raw("en", catalogue_copy)
    del data["reason.code_forged"]
    (catalogue_copy / "en.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"en\.json: key 'reason\.code_forged' is missing"):
        Messages.for_language("en", catalogue_copy)


def test_different_placeholders_are_a_load_error(catalogue_copy: Path) -> None:
    data = _raw("sr-Latn", catalogue_copy)
    data["report.selftest.some_failed"] = "Uređaji sa greškom: {broj}"
    (catalogue_copy / "sr-Latn.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"sr-Latn\.json: key 'report\.selftest\.some_failed' has placeholders"):
        Messages.for_language("sr-Latn", catalogue_copy)


def test_latin_letters_in_the_cyrillic_catalogue_are_a_load_error(catalogue_copy: Path) -> None:
    data = _raw("sr-Cyrl", catalogue_copy)
    data["panel.polls_closed"] = "Бирачко mjesto је затворено"
    (catalogue_copy / "sr-Cyrl.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"sr-Cyrl\.json: key 'panel\.polls_closed': Latin letter"):
        Messages.for_language("sr-Cyrl", catalogue_copy)


def test_broken_json_is_a_load_error_with_the_position(catalogue_copy: Path) -> None:
    (catalogue_copy / "hr.json").write_text('{"panel.insert_ballot": "x",,}', encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"hr\.json: not valid JSON at line 1"):
        Messages.for_language("hr", catalogue_copy)


def test_unknown_language_is_refused() -> None:
    with pytest.raises(CatalogueError, match=r"'de' has no message catalogue"):
        Messages.for_language("de")


def test_lookup_of_an_unknown_key_names_key_and_file() -> None:
    with pytest.raises(MessageError, match=r"'panel\.nope' is not in bs\.json"):
        Messages.for_language("bs").t("panel.nope")


def test_missing_parameter_names_the_parameter() -> None:
    with pytest.raises(MessageError, match=r"needs the parameter 'count'"):
        Messages.for_language("bs").t("report.selftest.some_failed")


def test_parameters_are_filled_in() -> None:
    assert Messages.for_language("bs").t("report.selftest.some_failed", count=2) == (
        "Uređaji s greškom: 2 – pozovite operatera."
    )


def test_reason_with_a_box_suffix_reads_as_its_code() -> None:
    msgs = Messages.for_language("en")
    assert msgs.reason("marginal_mark:vijece/l3c2") == msgs.t("reason.marginal_mark")


def test_numbers_and_dates_follow_the_language() -> None:
    when = datetime(2024, 10, 6, 7, 5, tzinfo=timezone(timedelta(hours=2)))
    bs, en = Messages.for_language("bs"), Messages.for_language("en")
    assert bs.format_decimal(67.45) == "67,5" and en.format_decimal(67.45) == "67.5"
    assert bs.format_date("2024-10-06") == "06.10.2024."
    assert en.format_date("2024-10-06") == "2024-10-06"
    assert bs.format_datetime(when) == "06.10.2024. 07:05"
    assert bs.format_datetime(when, with_offset=True) == "06.10.2024. 07:05 UTC+02:00"


def test_script_of_a_language() -> None:
    assert Messages.for_language("sr-Cyrl").script == "cyrl"
    assert {Messages.for_language(lang).script for lang in ("bs", "hr", "sr-Latn", "en")} == {"latn"}
