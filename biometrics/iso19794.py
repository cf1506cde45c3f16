"""ISO/IEC 19794-2:2005 finger minutiae records (FMR): bytes <-> `FingerprintTemplate`.

Layout (big-endian), as the commercial FVC2002 records write it:

    header  24 B  "FMR\\0", " 20\\0", total length u32, equipment u16 (4-bit certification flag + 12-bit id),
                  width u16, height u16, x / y resolution u16 (pixels per cm), views u8, reserved u8
    view     4 B  finger position u8, view (high nibble) / impression type (low nibble) u8, quality u8, count u8
    minutia  6 B  type (2 high bits) + x (14 bits) u16, reserved (2 bits) + y (14 bits) u16,
                  angle u8 (units of 360/256 degrees, counter-clockwise), quality u8
    extended data  length u16 + that many bytes (kept verbatim)

A record may hold several finger views: all are read (`read_records`), `read_record` returns the first.
Whatever a record holds that `FingerprintTemplate` has no field for (the certification flag, the view
number, the reserved bits, the extended data blocks) goes into `template.extras`, so that
`write_record(read_record(x)) == x` byte for byte.

Angles: ISO counts 256ths of a turn counter-clockwise from +x with y down, the same sense as
`Minutia.angle`; `round(angle / 2 pi * 256) % 256` on write, so an angle read survives a write exactly.
Pure: bytes in, bytes out.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from biometrics.errors import BiometricInputError
from biometrics.template import FingerprintTemplate, Minutia, MinutiaKind

MAGIC = b"FMR\x00"
VERSION_2005 = b" 20\x00"
_HEADER = struct.Struct(">4s4sIHHHHHBB")  # 24 bytes
_VIEW = struct.Struct(">BBBB")
_MINUTIA = struct.Struct(">HHBB")
_EXTENDED_LENGTH = struct.Struct(">H")
_TURN = 256  # ISO angle units in a full turn
_COORDINATE_MAX = 0x3FFF  # 14 bits


def read_record(data: bytes, source: str) -> FingerprintTemplate:
    """The first finger view of an ISO/IEC 19794-2:2005 record; `source` names the file in errors."""
    return read_records(data, source)[0]


def write_record(template: FingerprintTemplate | Sequence[FingerprintTemplate]) -> bytes:
    """An ISO/IEC 19794-2:2005 record holding the template (or several finger views, first one's header)."""
    views = [template] if isinstance(template, FingerprintTemplate) else list(template)
    if not views:
        raise ValueError("an ISO/IEC 19794-2 record holds at least one finger view")
    head = views[0]
    body = b"".join(_view_bytes(view) for view in views)
    length = _HEADER.size + len(body)
    equipment = (int(head.extras.get("certification", 0)) << 12) | (head.capture_equipment_id & 0x0FFF)
    header = _HEADER.pack(
        MAGIC,
        VERSION_2005,
        length,
        equipment,
        head.width,
        head.height,
        head.x_res_ppcm,
        head.y_res_ppcm,
        len(views),
        int(head.extras.get("reserved", 0)),
    )
    return header + body


def read_records(data: bytes, source: str) -> list[FingerprintTemplate]:
    """Every finger view of the record, in order."""
    if len(data) < _HEADER.size:
        raise BiometricInputError(source, f"ISO 19794-2 record truncated: {len(data)} bytes, the header alone is 24")
    magic, version, length, equipment, width, height, x_res, y_res, n_views, reserved = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BiometricInputError(source, f"not an ISO 19794-2 finger minutiae record (starts {magic!r}, expected b'FMR\\x00')")
    if version != VERSION_2005:
        raise BiometricInputError(
            source, f"ISO 19794-2 version {version!r} is not supported (only the 2005 format, b' 20\\x00'); re-export as 2005"
        )
    if length != len(data):
        raise BiometricInputError(source, f"ISO 19794-2 record says {length} bytes but the file has {len(data)}")
    if n_views == 0:
        raise BiometricInputError(source, "ISO 19794-2 record holds no finger view")
    views = []
    offset = _HEADER.size
    for index in range(n_views):
        view, offset = _read_view(data, offset, source, index)
        views.append(view)
    if offset != len(data):
        raise BiometricInputError(source, f"ISO 19794-2 record has {len(data) - offset} bytes after its last finger view")
    common = {
        "width": width,
        "height": height,
        "x_res_ppcm": x_res,
        "y_res_ppcm": y_res,
        "capture_equipment_id": equipment & 0x0FFF,
    }
    return [
        FingerprintTemplate(
            **common,
            minutiae=minutiae,
            finger_position=position,
            impression_type=impression,
            quality=quality,
            extras={"certification": equipment >> 12, "reserved": reserved, **extras},
        )
        for minutiae, position, impression, quality, extras in views
    ]


def _read_view(
    data: bytes, offset: int, source: str, index: int
) -> tuple[tuple[tuple[Minutia, ...], int, int, int, dict[str, object]], int]:
    if offset + _VIEW.size > len(data):
        raise BiometricInputError(source, f"ISO 19794-2 record truncated in the header of finger view {index + 1}")
    position, view_impression, quality, count = _VIEW.unpack_from(data, offset)
    offset += _VIEW.size
    end = offset + count * _MINUTIA.size
    if end + _EXTENDED_LENGTH.size > len(data):
        raise BiometricInputError(
            source, f"finger view {index + 1} says {count} minutiae but the record ends before them (truncated)"
        )
    minutiae = []
    reserved_y = []
    for m in range(count):
        type_x, reserved_and_y, angle, m_quality = _MINUTIA.unpack_from(data, offset + m * _MINUTIA.size)
        minutiae.append(
            Minutia(
                x=float(type_x & _COORDINATE_MAX),
                y=float(reserved_and_y & _COORDINATE_MAX),
                angle=angle * 2 * math.pi / _TURN,
                kind=MinutiaKind(type_x >> 14) if type_x >> 14 < 3 else MinutiaKind.OTHER,
                quality=m_quality,
            )
        )
        reserved_y.append(reserved_and_y >> 14)
        if type_x >> 14 == 3:
            reserved_y[-1] |= 0x100  # type bits 11 (reserved by the standard): kept so that a write restores them
    (extended_length,) = _EXTENDED_LENGTH.unpack_from(data, end)
    extended_end = end + _EXTENDED_LENGTH.size + extended_length
    if extended_end > len(data):
        raise BiometricInputError(
            source, f"finger view {index + 1} says {extended_length} bytes of extended data but the record ends first"
        )
    extras: dict[str, object] = {
        "view_number": view_impression >> 4,
        "extended_data": bytes(data[end + _EXTENDED_LENGTH.size : extended_end]),
    }
    if any(reserved_y):
        extras["minutia_reserved_bits"] = tuple(reserved_y)
    return (tuple(minutiae), position, view_impression & 0x0F, quality, extras), extended_end


def _view_bytes(template: FingerprintTemplate) -> bytes:
    minutiae = template.minutiae
    if len(minutiae) > 255:
        raise ValueError(f"an ISO/IEC 19794-2 finger view holds at most 255 minutiae, not {len(minutiae)}")
    view_number = int(template.extras.get("view_number", 0))
    head = _VIEW.pack(
        template.finger_position,
        (view_number << 4) | (template.impression_type & 0x0F),
        template.quality,
        len(minutiae),
    )
    reserved = template.extras.get("minutia_reserved_bits")
    reserved_bits = tuple(reserved) if isinstance(reserved, tuple) else (0,) * len(minutiae)
    body = bytearray()
    for minutia, bits in zip(minutiae, reserved_bits, strict=True):
        kind = 3 if bits & 0x100 else int(minutia.kind)
        x = min(max(round(minutia.x), 0), _COORDINATE_MAX)
        y = min(max(round(minutia.y), 0), _COORDINATE_MAX)
        angle = round(minutia.angle % (2 * math.pi) / (2 * math.pi) * _TURN) % _TURN
        quality = min(max(int(minutia.quality), 0), 255)
        body += _MINUTIA.pack((kind << 14) | x, ((bits & 0x3) << 14) | y, angle, quality)
    extended = template.extras.get("extended_data", b"")
    extended_bytes = bytes(extended) if isinstance(extended, bytes | bytearray) else b""
    return head + bytes(body) + _EXTENDED_LENGTH.pack(len(extended_bytes)) + extended_bytes
