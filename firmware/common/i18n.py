"""Message catalogues: every string a voter, committee member or technician reads.

One JSON file per language in config/messages/ (bs, hr, sr-Latn, sr-Cyrl, en), a flat object of
dotted keys to texts. `en.json` is the reference: every other catalogue must have exactly its keys and,
per key, the same `{placeholders}`. A catalogue that breaks this is refused when it is loaded, with an
error naming the file and the key, so a missing translation never reaches a voter's screen or a signed
report.

    msgs = Messages.for_language("bs")
    msgs.t("panel.insert_ballot")                  -> "Ubacite glasački listić"
    msgs.t("report.selftest.some_failed", count=2) -> "Uređaji s greškom: 2 – pozovite operatera."
    msgs.reason("marginal_mark:vijece/l3c2")       -> the words for the Reason code, box suffix dropped

Keys under `format.` are not prose but formats (strftime patterns, the decimal separator); they are
exempt from the script check and must not be transliterated.

Serbian Cyrillic (sr-Cyrl.json) is kept as its own file so a translator can correct it by hand; the
tests check it against `latin_message_to_cyrillic(sr-Latn)`, which is also how it was first made.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path

from config.election import Language
from config.script import latin_to_cyrillic
from omr.types import Outcome, Reason, Verdict

CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "config" / "messages"
REFERENCE_LANGUAGE = Language.EN
FORMAT_PREFIX = "format."

# Keys the code looks up by computing them from an enum: the reference catalogue must carry all of
# them, so that a new Reason or Outcome code cannot ship without words.
REQUIRED_KEYS: frozenset[str] = frozenset(
    [f"reason.{r.value}" for r in Reason]
    + [f"outcome.{o.value}" for o in Outcome]
    + [f"panel.verdict.{v.value}" for v in Verdict]
    + ["format.date", "format.datetime", "format.decimal_separator", "format.time"]
)

_LATIN_LETTER = re.compile(r"[A-Za-zČĆĐŠŽčćđšžÂÔâô]")
_CYRILLIC_LETTER = re.compile(r"[\u0400-\u04FF]")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


class CatalogueError(ValueError):
    """A message catalogue that cannot be used. The message names the file and the key."""


class MessageError(KeyError):
    """A message looked up with a key or parameters the catalogue does not have."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class Messages:
    """The texts of one language. Build with `Messages.for_language(lang)` (cached, validated)."""

    def __init__(self, language: Language, texts: Mapping[str, str], source: Path) -> None:
        self.language = language
        self.source = source
        self._texts = dict(texts)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def for_language(cls, language: str | Language, directory: Path | None = None) -> Messages:
        """The validated catalogue of `language` (bs, hr, sr-Latn, sr-Cyrl, en).

        Raises CatalogueError naming the file and key if the catalogue or the reference `en.json` is
        missing, malformed, lacks a key of `en.json`, has a key `en.json` lacks, or uses different
        placeholders."""
        try:
            lang = Language(language)
        except ValueError:
            known = ", ".join(lang.value for lang in Language)
            raise CatalogueError(
                f"language {language!r} has no message catalogue; use one of {known} "
                "(station.language in the election definition)"
            ) from None
        return _load(lang, (directory or CATALOGUE_DIR).resolve())

    # -- lookups -----------------------------------------------------------------------------
    @property
    def script(self) -> str:
        """'cyrl' for Serbian Cyrillic, else 'latn': the script names are rendered in."""
        return "cyrl" if self.language == Language.SR_CYRL else "latn"

    def keys(self) -> frozenset[str]:
        return frozenset(self._texts)

    def has(self, key: str) -> bool:
        return key in self._texts

    def t(self, key: str, **params: object) -> str:
        """The text for `key` with `{placeholders}` filled from `params` (extra params are ignored)."""
        try:
            template = self._texts[key]
        except KeyError:
            raise MessageError(
                f"message key {key!r} is not in {self.source.name}; add it to every catalogue in "
                f"{self.source.parent} (start with {REFERENCE_LANGUAGE.value}.json)"
            ) from None
        try:
            return template.format(**params)
        except KeyError as exc:
            raise MessageError(
                f"message {key!r} in {self.source.name} needs the parameter {exc.args[0]!r}; "
                f"pass it to t({key!r}, {exc.args[0]}=...)"
            ) from None

    def reason(self, code: str) -> str:
        """Words for a Reason code; accepts the 'code:box' form of omr.types.ContestResult.reasons."""
        return self.t(f"reason.{code.split(':', 1)[0]}")

    def outcome(self, code: str) -> str:
        return self.t(f"outcome.{code}")

    def verdict(self, code: str) -> str:
        """What the voter panel shows for a Verdict code."""
        return self.t(f"panel.verdict.{code}")

    # -- formats -----------------------------------------------------------------------------
    def format_decimal(self, value: float, places: int = 1) -> str:
        """A number with the language's decimal separator: 67,5 (bs) / 67.5 (en)."""
        return f"{value:.{places}f}".replace(".", self.t("format.decimal_separator"))

    def format_date(self, value: datetime | str) -> str:
        """A date (datetime or ISO 'YYYY-MM-DD') in the language's format: 06.10.2024. / 2024-10-06."""
        if isinstance(value, str):
            value = datetime.strptime(value, "%Y-%m-%d")
        return value.strftime(self.t("format.date"))

    def format_time(self, value: datetime) -> str:
        return value.strftime(self.t("format.time"))

    def format_datetime(self, value: datetime, with_offset: bool = False) -> str:
        """Date and time in the language's format, as the wall clock of `value`'s zone shows it; with
        `with_offset` and an aware time, the UTC offset too (for technicians comparing logs)."""
        text = value.strftime(self.t("format.datetime"))
        offset = value.utcoffset()
        if with_offset and offset is not None:
            minutes = int(offset.total_seconds() // 60)
            sign = "+" if minutes >= 0 else "-"
            text += f" UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        return text


def latin_message_to_cyrillic(text: str) -> str:
    """Transliterate a Serbian Latin message to Cyrillic, leaving `{placeholders}` untouched."""
    out: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(latin_to_cyrillic(text[pos : match.start()]))
        out.append(match.group())
        pos = match.end()
    out.append(latin_to_cyrillic(text[pos:]))
    return "".join(out)


def placeholders(template: str) -> frozenset[str]:
    """The names of the `{placeholders}` in a message template."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


# -- loading and validation ----------------------------------------------------------------------
@cache
def _load(language: Language, directory: Path) -> Messages:
    reference_path = directory / f"{REFERENCE_LANGUAGE.value}.json"
    reference = _read(reference_path)
    missing_required = sorted(REQUIRED_KEYS - reference.keys())
    if missing_required:
        raise CatalogueError(
            f"{reference_path}: key {missing_required[0]!r} is missing"
            + (f" (and {len(missing_required) - 1} more: {', '.join(missing_required[1:])})"
               if len(missing_required) > 1 else "")
            + "; every Reason, Outcome and Verdict code of omr/types.py needs words in every catalogue"
        )
    _check_script(reference_path, language=REFERENCE_LANGUAGE, texts=reference)
    if language == REFERENCE_LANGUAGE:
        return Messages(language, reference, reference_path)

    path = directory / f"{language.value}.json"
    texts = _read(path)
    missing = [k for k in reference if k not in texts]
    if missing:
        raise CatalogueError(
            f"{path}: key {missing[0]!r} is missing"
            + (f" (and {len(missing) - 1} more: {', '.join(missing[1:6])}{', ...' if len(missing) > 6 else ''})"
               if len(missing) > 1 else "")
            + f"; translate it from {reference_path.name}"
        )
    extra = [k for k in texts if k not in reference]
    if extra:
        raise CatalogueError(
            f"{path}: key {extra[0]!r} is not in {reference_path.name}; add it there first or remove it "
            "(a misspelt key?)"
        )
    for key, template in reference.items():
        want, have = placeholders(template), placeholders(texts[key])
        if want != have:
            raise CatalogueError(
                f"{path}: key {key!r} has placeholders {sorted(have)} but {reference_path.name} has "
                f"{sorted(want)}; use exactly the same {{names}}"
            )
    _check_script(path, language=language, texts=texts)
    return Messages(language, texts, path)


def _read(path: Path) -> dict[str, str]:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogueError(
            f"{path}: message catalogue not found; it ships with the software in config/messages/ "
            "- reinstall the software"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path}: cannot be read ({exc}); reinstall the software") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CatalogueError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); fix the file"
        ) from None
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: must be a JSON object of \"key\": \"text\" pairs")
    for key, text in data.items():
        if not isinstance(text, str) or not text.strip():
            raise CatalogueError(f"{path}: key {key!r}: the text must be a non-empty string, got {text!r}")
        try:
            placeholders(text)
        except ValueError as exc:
            raise CatalogueError(f"{path}: key {key!r}: broken placeholder in {text!r} ({exc})") from None
    return data


def _check_script(path: Path, language: Language, texts: Mapping[str, str]) -> None:
    """Cyrillic catalogues hold no Latin letters and Latin ones no Cyrillic (outside placeholders and
    format keys): a half-transliterated text is a translation error, not a style choice."""
    wrong = _LATIN_LETTER if language == Language.SR_CYRL else _CYRILLIC_LETTER
    script = "Latin" if language == Language.SR_CYRL else "Cyrillic"
    for key, text in texts.items():
        if key.startswith(FORMAT_PREFIX):
            continue
        found = wrong.search(_PLACEHOLDER.sub("", text))
        if found:
            raise CatalogueError(
                f"{path}: key {key!r}: {script} letter {found.group()!r} in {text!r}; "
                f"a {language.value} catalogue must be written in one script"
            )
