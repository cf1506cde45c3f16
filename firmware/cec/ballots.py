"""Printing ballots: draw a ballot style's layout (omr.layout) as an image, with its signed code.

Used by the print house (`ballotbox ballots render`, PNG or PDF), by the simulator (the voters' ballots)
and by test decks. The geometry comes only from omr.layout, so what is printed is what is read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, ImageDraw

from config.election import Election
from firmware.common.fonts import load_font
from omr.ballot_code import make_code
from omr.layout import BallotLayout, TextSpec, layout_ballot
from omr.reference import StyleReference, build_reference

TEST_KEY = Path(__file__).resolve().parents[2] / "config" / "keys" / "cec-test-ballot-code.pem"
BOX_LINE_MM = 0.35  # box outline: dark enough for a 100-dpi camera, thin enough not to count as ink inside
INK = (0, 0, 0)

# font size of each text role, as a fraction of the row height for boxes' labels, else in mm
_ROLE_MM = {"title": 5.5, "subtitle": 4.2, "station": 3.2, "instructions": 3.6, "contest": 4.6, "footer": 3.2,
            "stamp": 2.8}
_BOLD = {"title", "instructions", "contest", "list"}


REFERENCE_DPI = 100.0


def references_for(election: Election, key: Ed25519PrivateKey | None = None) -> dict[str, StyleReference]:
    """The printed reference of every ballot style, for the interpreter's check of ink outside the boxes
    (rendered once per election and key: a restart after a power cut does not wait for it again)."""
    carrier = _Carrier(election, key or load_signing_key())
    cache_key = (election.digest(), carrier.key_id)
    if cache_key not in _REFERENCES:
        out = {}
        for style in election.ballot_styles:
            img, _ = render_ballot(election, style.id, REFERENCE_DPI, key=carrier.key)
            out[style.id] = build_reference(style.id, np.array(img), REFERENCE_DPI)
        _REFERENCES[cache_key] = out
    return dict(_REFERENCES[cache_key])


_REFERENCES: dict[tuple[str, str], dict[str, StyleReference]] = {}


class BallotKeyError(ValueError):
    """The ballot-code signing key cannot be used; the message names the file and what to do."""


def load_signing_key(path: str | Path = TEST_KEY) -> Ed25519PrivateKey:
    """The CEC's ballot-code signing key (PEM, PKCS#8). The shipped one is for tests and training only."""
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise BallotKeyError(f"{path}: no such key file; give the CEC ballot-code key with --key") from None
    except OSError as exc:  # a folder, no permission
        raise BallotKeyError(f"{path}: cannot be read ({exc.strerror}); give the CEC ballot-code key file with "
                             "--key") from None
    except (ValueError, TypeError):  # cryptography's words ("MalformedFraming", a FAQ link) help no one here
        raise BallotKeyError(f"{path}: not an unencrypted PEM private key; give the CEC ballot-code key (PEM, "
                             "PKCS#8, Ed25519) with --key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BallotKeyError(f"{path}: ballot codes are signed with Ed25519; this is a {type(key).__name__}")
    return key


def render_ballot(election: Election, style_id: str, dpi: float, key: Ed25519PrivateKey | None = None,
                  mode: str | None = None) -> tuple[Image.Image, BallotLayout]:
    """The printed ballot as an RGB image at `dpi`, and its layout."""
    layout = layout_ballot(election, style_id)
    return _render_cached(election.digest(), style_id, float(dpi), mode or election.mode,
                          _Carrier(election, key or load_signing_key())).copy(), layout


class _Carrier:
    def __init__(self, election: Election, key: Ed25519PrivateKey) -> None:
        self.election, self.key = election, key
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = raw.hex()

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Carrier) and other.key_id == self.key_id


@lru_cache(maxsize=8)
def _render_cached(digest: str, style_id: str, dpi: float, mode: str, carrier: _Carrier) -> Image.Image:
    election = carrier.election
    layout = layout_ballot(election, style_id)
    k = dpi / 25.4
    colour = election.style(style_id).colour
    img = Image.new("RGB", layout.size_px(dpi), colour)
    draw = ImageDraw.Draw(img)
    for r in layout.registration:
        x, y, w, h = r.px(dpi)
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=INK)
    _draw_code(img, make_code(election, style_id, carrier.key, mode), layout.code.px(dpi))
    bx, by, bw, bh = layout.band.px(dpi)
    draw.rectangle([bx, by, bx + bw - 1, by + bh - 1], fill=election.style(style_id).security_colour)
    line = max(1, round(BOX_LINE_MM * k))
    for b in layout.boxes:
        x, y, w, h = b.rect.px(dpi)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=INK, width=line)
    sx, sy, sw, sh = layout.stamp.px(dpi)
    _dashed_rect(draw, sx, sy, sw, sh, dash=max(2, round(2 * k)), width=line)
    for t in layout.texts:
        _draw_text(draw, t, k)
    if mode == "test":
        # A specimen says so in the footer, beside the stamp zone - never over a box, where its ink
        # would read as votes.
        font = load_font(round(6 * k), bold=True)
        n = layout.note
        draw.text((n.x * k, (n.y + 6) * k), "PROBNI LISTIĆ", font=font, fill=(110, 110, 110), anchor="lm")
        draw.text((n.x * k, (n.y + 16) * k), "ПРОБНИ ЛИСТИЋ", font=font, fill=(110, 110, 110), anchor="lm")
    return img


def _draw_code(img: Image.Image, payload: str, rect: list[int]) -> None:
    qr = segno.make(payload, error="m")
    modules = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    modules = np.pad(modules, 4)  # quiet zone of 4 modules, as ISO/IEC 18004 asks
    x, y, w, h = rect
    side = min(w, h)
    n = modules.shape[0]
    # nearest-neighbour scaling keeps module edges sharp; every module gets an integer-ish width
    idx = (np.arange(side) * n // side).clip(0, n - 1)
    tile = np.where(modules[np.ix_(idx, idx)] == 1, 0, 255).astype(np.uint8)
    img.paste(Image.fromarray(tile).convert("RGB"), (x, y))


def _dashed_rect(draw: ImageDraw.ImageDraw, x: int, y: int, w: int, h: int, dash: int, width: int) -> None:
    for x0 in range(x, x + w, 2 * dash):
        draw.line([x0, y, min(x0 + dash, x + w), y], fill=(90, 90, 90), width=width)
        draw.line([x0, y + h, min(x0 + dash, x + w), y + h], fill=(90, 90, 90), width=width)
    for y0 in range(y, y + h, 2 * dash):
        draw.line([x, y0, x, min(y0 + dash, y + h)], fill=(90, 90, 90), width=width)
        draw.line([x + w, y0, x + w, min(y0 + dash, y + h)], fill=(90, 90, 90), width=width)


def _draw_text(draw: ImageDraw.ImageDraw, t: TextSpec, k: float) -> None:
    """One label. A box's label is two lines of fixed size - the Latin form, and the Cyrillic form
    below it in a smaller size - so every option reads in both scripts and sizes never jump between
    lines (a voter compares lines). Only a name too long for its column is shrunk, never cut silently
    (an ellipsis shows where)."""
    x, y, w, h = t.rect.px(k * 25.4)
    bold = t.role in _BOLD
    if t.role in ("list", "candidate"):
        top_mm = min(t.rect.h * 0.40, 3.4)
        _fit_line(draw, t.latn, x, y + h * 0.36, t.rect.w, top_mm, k, bold)
        if t.cyrl:
            _fit_line(draw, t.cyrl, x + round(0.4 * k), y + h * 0.78, t.rect.w, top_mm * 0.78, k, False,
                      fill=(60, 60, 60))
        return
    text = f"{t.latn}  ·  {t.cyrl}" if t.cyrl and t.role == "station" else t.latn
    if _length_mm(text, _ROLE_MM[t.role], bold) > t.rect.w:
        text = t.latn
    _fit_line(draw, text, x, y + h / 2, t.rect.w, _ROLE_MM[t.role], k, bold)


# Text is fitted (font size, ellipsis) in millimetres at a fixed resolution, then drawn at the target
# dpi: the printed ballot has one geometry, whatever the render's dpi (the interpreter's printed
# reference, rendered at 100 dpi, must match a 200-dpi capture).
_FIT_K = 300 / 25.4


def _length_mm(text: str, size_mm: float, bold: bool) -> float:
    return load_font(max(6, round(size_mm * _FIT_K)), bold=bold).getlength(text) / _FIT_K


def _fit_line(draw: ImageDraw.ImageDraw, text: str, x: float, cy: float, width_mm: float, size_mm: float,
              k: float, bold: bool, fill: tuple[int, int, int] = INK) -> None:
    size = size_mm
    while _length_mm(text, size, bold) > width_mm and size > size_mm * 0.6:
        size *= 0.92
    if _length_mm(text, size, bold) > width_mm:
        while text and _length_mm(text + "…", size, bold) > width_mm:
            text = text[:-1]
        text += "…"
    # the font at its exact size in pixels, not rounded: a size rounded to whole pixels makes a line up to
    # ~4 % shorter or longer at one dpi than at another (3 mm on a list title at 100 against 200 dpi),
    # and the interpreter's reference, rendered at 100 dpi, then misses the end of the print's line
    # (issue 13: `ink_outside_boxes` on council sheets)
    draw.text((x, cy), text, font=load_font(max(6.0, size * k), bold=bold), fill=fill, anchor="lm")


