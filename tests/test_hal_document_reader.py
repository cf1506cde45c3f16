"""The real SerialDocumentReader over a pseudo-terminal against the document reader twin: suffixes,
multi-line MRZ scans, chunked and slow writes, noise, non-UTF-8 bytes, a pulled cable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from biometrics.documents import parse_document
from hal.document_reader import (
    DocumentReader,
    DocumentReaderDisconnected,
    DocumentReaderError,
)
from hal.drivers.document_reader_serial import (
    MAX_FRAME_BYTES,
    DocumentReaderSettings,
    SerialDocumentReader,
)
from hal.errors import HardwareUnavailable
from simulator.document_reader_twin import DocumentReaderTwin, SimulatedDocumentReader

TD1 = "IDBIH1E181TKT610101990170003<<\r9001011M3105205BIH<<<<<<<<<<<7\rHADZIC<<AMIR<<<<<<<<<<<<<<<<<<"
RECORD = "BBKV1;KIND=ID;DOC=1E181TKT6;JMBG=0101990170003;SURNAME=Hadžić;GIVEN=Amir"


@pytest.fixture
def twin() -> Iterator[DocumentReaderTwin]:
    with DocumentReaderTwin() as reader:
        yield reader


def driver_for(twin: DocumentReaderTwin, **settings: object) -> SerialDocumentReader:
    return SerialDocumentReader(DocumentReaderSettings(port=twin.port, inter_char_timeout_s=0.05, **settings))  # type: ignore[arg-type]


def test_driver_implements_the_document_reader_interface(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin)
    assert isinstance(driver, DocumentReader)
    status = driver.self_test()
    assert status.ok is True
    assert status.detail == f"listening on {twin.port}"
    driver.close()
    assert driver.self_test().ok is False


def test_no_scan_within_the_timeout_gives_none(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin)
    started = time.monotonic()
    assert driver.read(timeout_s=0.15) is None
    assert 0.14 <= time.monotonic() - started < 0.6


def test_a_three_line_mrz_with_cr_between_lines_is_one_scan(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin)
    twin.scan(TD1, suffix=b"\r\n")
    text = driver.read(timeout_s=1.0)
    assert text == TD1 + "\r\n"
    assert parse_document(text).document_number == "1E181TKT6"
    assert driver.read(timeout_s=0.1) is None


def test_chunked_slow_writes_within_the_inter_character_timeout_make_one_scan(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin)
    writer = threading.Thread(target=twin.scan, args=(TD1,), kwargs={"chunk_size": 7, "delay_s": 0.01})
    writer.start()
    text = driver.read(timeout_s=1.0)
    writer.join()
    assert text == TD1 + "\r\n"


def test_an_etx_suffix_ends_the_scan_at_once_and_keeps_the_next_one(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin, suffix=b"\x03")
    twin.send_raw(b"\x02" + RECORD.encode() + b"\x03\x02" + TD1.encode() + b"\x03")
    first = driver.read(timeout_s=1.0)
    second = driver.read(timeout_s=1.0)
    assert first == "\x02" + RECORD
    assert second == "\x02" + TD1
    assert parse_document(first).surname == "Hadžić"
    assert parse_document(second).jmbg is not None


def test_two_scans_separated_by_silence_are_two_frames(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin, suffix=None)
    twin.scan(RECORD, suffix=b"")
    assert driver.read(timeout_s=1.0) == RECORD
    twin.scan("0101990170003", suffix=b"\r")
    assert driver.read(timeout_s=1.0) == "0101990170003\r"


def test_wake_up_noise_of_nul_bytes_and_blank_lines_is_dropped(twin: DocumentReaderTwin) -> None:
    # The driver is already listening (bytes buffered before read() starts show no gap between them).
    driver = driver_for(twin)
    result: list[str | None] = []
    listener = threading.Thread(target=lambda: result.append(driver.read(timeout_s=1.0)))
    listener.start()
    twin.send_raw(b"\x00\x00\r\n")
    time.sleep(0.15)
    twin.scan(RECORD)
    listener.join()
    assert result == [RECORD + "\r\n"]


def test_non_utf8_bytes_are_a_clear_error_and_the_next_scan_reads(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin)
    twin.send_raw(b"IDBIH\xff\xfe1E18\r\n")
    with pytest.raises(DocumentReaderError) as caught:
        driver.read(timeout_s=1.0)
    assert str(caught.value) == (
        f"the document reader on {twin.port} sent bytes that are not UTF-8 text (0xff at byte 5 of 13) -- "
        "scan the document again; if it repeats, set the reader's output to UTF-8 (or ASCII)"
    )
    twin.scan(RECORD)
    assert driver.read(timeout_s=1.0) == RECORD + "\r\n"


def test_a_reader_that_never_stops_sending_is_refused(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin, suffix=b"\x03")
    twin.send_raw(b"A" * (MAX_FRAME_BYTES + 10))
    with pytest.raises(DocumentReaderError, match=f"more than {MAX_FRAME_BYTES} bytes"):
        driver.read(timeout_s=1.0)


def test_a_pulled_cable_names_the_port(twin: DocumentReaderTwin) -> None:
    driver = driver_for(twin)
    port = twin.port
    twin.unplug()
    with pytest.raises(DocumentReaderDisconnected, match=f"lost the document reader on {port}"):
        driver.read(timeout_s=0.5)
    driver.close()


def test_a_missing_port_is_hardware_unavailable() -> None:
    with pytest.raises(HardwareUnavailable, match="cannot open the document reader port /dev/nonexistent-reader"):
        SerialDocumentReader(DocumentReaderSettings(port="/dev/nonexistent-reader"))


def test_the_simulated_reader_gives_scans_in_order_then_none() -> None:
    reader = SimulatedDocumentReader()
    assert isinstance(reader, DocumentReader)
    reader.present(TD1)
    reader.present(RECORD)
    assert reader.read(0.1) == TD1
    assert reader.read(0.1) == RECORD
    assert reader.read(0.1) is None
    reader.unplug()
    assert reader.self_test().ok is False
    with pytest.raises(DocumentReaderDisconnected):
        reader.read(0.1)
