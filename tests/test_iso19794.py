"""ISO/IEC 19794-2:2005 codec: byte-exact round trips and a clear error for every kind of bad record."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biometrics.errors import BiometricInputError
from biometrics.iso19794 import read_record, read_records, write_record
from biometrics.template import FingerprintTemplate, Minutia, MinutiaKind


def _record(minutiae: list[tuple[int, int, int, int, int]], extended: bytes = b"", views: int = 1) -> bytes:
    """A record built by hand the way the commercial FVC2002 records are laid out."""
    view = struct.pack(">BBBB", 0, 0, 0, len(minutiae))
    view += b"".join(struct.pack(">HHBB", (kind << 14) | x, y, angle, q) for kind, x, y, angle, q in minutiae)
    view += struct.pack(">H", len(extended)) + extended
    body = view * views
    header = struct.pack(">4s4sIHHHHHBB", b"FMR\x00", b" 20\x00", 24 + len(body), 0, 300, 400, 197, 197, views, 0)
    return header + body


COMMERCIAL_LIKE = _record([(1, 151, 91, 141, 0), (2, 65, 97, 245, 0), (1, 293, 393, 0, 0)])


def test_a_commercial_layout_reads_into_pixels_radians_and_kinds() -> None:
    template = read_record(COMMERCIAL_LIKE, "101_1.iso")
    assert (template.width, template.height, template.x_res_ppcm, template.y_res_ppcm) == (300, 400, 197, 197)
    first = template.minutiae[0]
    assert (first.x, first.y, first.kind) == (151.0, 91.0, MinutiaKind.RIDGE_ENDING)
    assert first.angle == pytest.approx(141 * 2 * math.pi / 256)
    assert template.minutiae[1].kind == MinutiaKind.BIFURCATION


def test_a_commercial_layout_writes_back_byte_for_byte() -> None:
    assert write_record(read_record(COMMERCIAL_LIKE, "x.iso")) == COMMERCIAL_LIKE


def test_extended_data_and_every_view_survive_the_round_trip() -> None:
    data = _record([(1, 10, 20, 30, 40)], extended=b"\x00\x01\x00\x02ab", views=2)
    views = read_records(data, "two.iso")
    assert len(views) == 2
    assert read_record(data, "two.iso") == views[0]
    assert write_record(views) == data


minutia_fields = st.tuples(
    st.integers(0, 3), st.integers(0, 0x3FFF), st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 255)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(minutia_fields, max_size=40), st.binary(max_size=20))
def test_any_valid_record_round_trips_byte_for_byte(fields: list[tuple[int, int, int, int, int]], extended: bytes) -> None:
    data = _record(fields, extended)
    assert write_record(read_record(data, "r.iso")) == data
    assert write_record(read_record(write_record(read_record(data, "r.iso")), "r.iso")) == data


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2000), st.floats(0, 2000), st.floats(0, 2 * math.pi - 1e-6)), max_size=30))
def test_a_written_template_reads_back_within_a_pixel_and_an_angle_unit(points: list[tuple[float, float, float]]) -> None:
    template = FingerprintTemplate(300, 400, minutiae=tuple(Minutia(x, y, a) for x, y, a in points))
    again = read_record(write_record(template), "t.iso")
    for before, after in zip(template.minutiae, again.minutiae, strict=True):
        assert abs(before.x - after.x) <= 0.5 and abs(before.y - after.y) <= 0.5
        turn = abs((before.angle - after.angle + math.pi) % (2 * math.pi) - math.pi)
        assert turn <= math.pi / 256 + 1e-9


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (COMMERCIAL_LIKE[:20], "truncated: 20 bytes"),
        (b"XYZ\x00" + COMMERCIAL_LIKE[4:], "not an ISO 19794-2 finger minutiae record"),
        (COMMERCIAL_LIKE[:4] + b" 30\x00" + COMMERCIAL_LIKE[8:], "version b' 30\\x00' is not supported"),
        (COMMERCIAL_LIKE + b"\x00", "says 48 bytes but the file has 49"),
        (COMMERCIAL_LIKE[:8] + struct.pack(">I", 26) + COMMERCIAL_LIKE[12:26], "truncated in the header of finger view 1"),
        (
            COMMERCIAL_LIKE[:8] + struct.pack(">I", 46) + COMMERCIAL_LIKE[12:46],
            "says 3 minutiae but the record ends before them",
        ),
        (_record([]).replace(b"\x01\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00"), "holds no finger view"),
    ],
)
def test_a_bad_record_is_refused_naming_the_file_and_the_fault(data: bytes, says: str) -> None:
    with pytest.raises(BiometricInputError) as refused:
        read_record(data, "enrol/101_1.iso")
    assert refused.value.path == "enrol/101_1.iso"
    assert says in str(refused.value)


def test_extended_data_longer_than_the_record_is_refused() -> None:
    data = bytearray(_record([(1, 1, 1, 1, 1)], extended=b"ab"))
    data[-4:-2] = struct.pack(">H", 9)
    with pytest.raises(BiometricInputError, match="9 bytes of extended data but the record ends first"):
        read_record(bytes(data), "x.iso")


def test_trailing_bytes_after_the_last_view_are_refused() -> None:
    data = bytearray(_record([(1, 1, 1, 1, 1)]) + b"zz")
    data[8:12] = struct.pack(">I", len(data))
    with pytest.raises(BiometricInputError, match="2 bytes after its last finger view"):
        read_record(bytes(data), "x.iso")
