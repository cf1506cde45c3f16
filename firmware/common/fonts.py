"""Fonts for printed reports: a TrueType face that has the Latin letters of the BiH languages
(č ć đ š ž, dž, lj, nj) and Serbian Cyrillic (ђ ј љ њ ћ џ), in regular, bold and monospaced cuts.

DejaVu (Debian package `fonts-dejavu-core`, installed by `bash scripts/setup.sh`) is preferred: it is
on every Raspberry Pi OS image and covers both scripts. Any other TTF under the search directories is
accepted if it really has every required glyph (checked by drawing them, not by trusting the name).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

FONT_DIRS: tuple[Path, ...] = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))

# Every letter of Gaj's Latin alphabet and of Vuk's Cyrillic alphabet that is not plain ASCII, both cases.
REQUIRED_CHARS = "čćđšžČĆĐŠŽабвгдђежзијклљмнњопрстћуфхцчџшАБВГДЂЕЖЗИЈКЛЉМНЊОПРСТЋУФХЦЧЏШ–…"

Style = Literal["regular", "bold", "mono"]

# Preferred faces per style, best first: file names searched for under FONT_DIRS.
_PREFERRED: dict[str, tuple[str, ...]] = {
    "regular": ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf"),
    "bold": ("DejaVuSans-Bold.ttf", "NotoSans-Bold.ttf", "LiberationSans-Bold.ttf", "FreeSansBold.ttf"),
    "mono": ("DejaVuSansMono.ttf", "NotoSansMono-Regular.ttf", "LiberationMono-Regular.ttf", "FreeMono.ttf"),
}


class FontError(RuntimeError):
    """No usable font: the message says which glyphs are needed and how to install a font."""


@dataclass(frozen=True)
class FontSet:
    regular: Path
    bold: Path
    mono: Path

    def path(self, style: Style) -> Path:
        return {"regular": self.regular, "bold": self.bold, "mono": self.mono}[style]


def font(style: Style, size_px: float) -> ImageFont.FreeTypeFont:
    """The report font of `style` at `size_px` pixels (cached). Raises FontError if none is installed."""
    return _font(find_fonts().path(style), size_px)


def load_font(size_px: float, bold: bool = False) -> ImageFont.FreeTypeFont:
    """The regular or bold face at `size_px` pixels (the form firmware/cec/ballots.py uses)."""
    return font("bold" if bold else "regular", size_px)


@cache
def find_fonts(search_dirs: tuple[Path, ...] = FONT_DIRS) -> FontSet:
    """Find regular, bold and monospaced faces covering REQUIRED_CHARS under `search_dirs`.

    A missing bold or mono cut falls back to the regular face (the report stays readable); a missing
    regular face is an error naming the package to install."""
    files = sorted(p for d in search_dirs if d.is_dir() for p in d.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    chosen: dict[str, Path] = {}
    for style, names in _PREFERRED.items():
        by_name = {p.name: p for p in files}
        for name in names:
            if name in by_name and covers(by_name[name]):
                chosen[style] = by_name[name]
                break
    if "regular" not in chosen:
        # Any face with the glyphs will do, as long as it is not an italic or a symbol font.
        for p in files:
            lowered = p.name.lower()
            if any(word in lowered for word in ("italic", "oblique", "math", "symbol", "emoji")):
                continue
            if covers(p):
                chosen["regular"] = p
                break
    if "regular" not in chosen:
        where = ", ".join(str(d) for d in search_dirs)
        raise FontError(
            f"no TrueType font with Latin č ć đ š ž and Cyrillic glyphs found under {where}; "
            "reports cannot be printed. Run `bash scripts/setup.sh` (it installs the apt package "
            "fonts-dejavu-core), or `sudo apt-get install fonts-dejavu-core`"
        )
    return FontSet(
        regular=chosen["regular"],
        bold=chosen.get("bold", chosen["regular"]),
        mono=chosen.get("mono", chosen["regular"]),
    )


def covers(path: Path, chars: Iterable[str] = REQUIRED_CHARS) -> bool:
    """True if the face at `path` draws every char in `chars` with a glyph of its own (not the
    'missing glyph' box the face draws for a code point it lacks)."""
    try:
        face = ImageFont.truetype(str(path), 24)
    except OSError:
        return False
    missing = _draw(face, "\U000F0000")  # a private-use code point no text font has: its .notdef box
    return all(_draw(face, ch) != missing for ch in chars)


def _draw(face: ImageFont.FreeTypeFont, ch: str) -> bytes:
    image = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(image).text((8, 4), ch, font=face, fill=255)
    return image.tobytes()


@lru_cache(maxsize=64)
def _font(path: Path, size_px: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size_px)
