"""The real EscPosPrinter driver over a pseudo-terminal against the ESC/POS printer twin, which
decodes the bytes back into the printed image."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from config.device import PrinterSettings
from hal.drivers.escpos_printer import (
    EscPosPrinter,
    prepare_raster_image,
    raster_commands,
)
from hal.errors import DeviceStatus, HardwareUnavailable
from hal.printer import PaperOut, Printer, PrinterError
from simulator.escpos_twin import (
    Cut,
    EscPosDecoder,
    EscPosPrinterTwin,
    EscPosProtocolError,
    Initialize,
    LineFeed,
    RasterImage,
    StatusQuery,
    decode_documents,
)


@pytest.fixture
def twin() -> Iterator[EscPosPrinterTwin]:
    with EscPosPrinterTwin() as printer:
        yield printer


@pytest.fixture
def driver(twin: EscPosPrinterTwin) -> Iterator[EscPosPrinter]:
    printer = EscPosPrinter(PrinterSettings(port=twin.port, width_px=576, timeout_s=0.3))
    yield printer
    printer.close()


def random_bits(height: int, width: int, seed: int = 7) -> Image.Image:
    """A 1-bit image of random dots: any bit lost, shifted or inverted on the way shows."""
    return Image.fromarray(np.random.default_rng(seed).random((height, width)) > 0.5)


def test_driver_implements_the_printer_interface(driver: EscPosPrinter) -> None:
    assert isinstance(driver, Printer)
    assert driver.width_px == 576


def test_a_one_bit_image_comes_out_pixel_exact(twin: EscPosPrinterTwin, driver: EscPosPrinter) -> None:
    sent = random_bits(600, 576)  # 600 rows: three bands (255 + 255 + 90)
    driver.print_image(sent)
    (document,) = twin.wait_for_documents(1)
    assert document.image.mode == "1"
    assert document.image.size == (576, 600)
    assert np.array_equal(np.asarray(document.image), np.asarray(sent))
    assert document.feed_lines == 4
    assert document.partial_cut is True
    assert twin.status_queries == [4]


def test_a_narrow_image_is_padded_with_white_to_whole_bytes(twin: EscPosPrinterTwin, driver: EscPosPrinter) -> None:
    sent = random_bits(40, 203, seed=3)
    driver.print_image(sent)
    (document,) = twin.wait_for_documents(1)
    printed = np.asarray(document.image)
    assert printed.shape == (40, 208)
    assert np.array_equal(printed[:, :203], np.asarray(sent))
    assert printed[:, 203:].all()  # the 5 padding dots stay white


def test_a_wide_greyscale_image_is_scaled_and_dithered(twin: EscPosPrinterTwin, driver: EscPosPrinter) -> None:
    gradient = np.tile(np.linspace(0, 255, 720, dtype=np.uint8), (90, 1))
    sent = Image.fromarray(gradient, mode="L")
    driver.print_image(sent)
    (document,) = twin.wait_for_documents(1)
    expected = prepare_raster_image(sent, 576)
    assert expected.size == (576, 72)  # 720 x 90 scaled by 576/720
    assert np.array_equal(np.asarray(document.image), np.asarray(expected))
    # Dithered, not thresholded: the dark end is mostly black, the light end mostly white.
    dots = ~np.asarray(document.image)
    assert dots[:, :50].mean() > 0.9
    assert dots[:, -50:].mean() < 0.1


def test_transparent_pixels_print_as_white_paper() -> None:
    image = Image.new("RGBA", (16, 2), (0, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 0, 255))
    printed = np.asarray(prepare_raster_image(image, 576))
    assert printed.sum() == 31  # 32 dots, one black
    assert bool(printed[0, 0]) is False


def test_two_reports_are_two_documents(twin: EscPosPrinterTwin, driver: EscPosPrinter) -> None:
    first, second = random_bits(30, 576, seed=1), random_bits(50, 384, seed=2)
    driver.print_image(first)
    driver.print_image(second)
    documents = twin.wait_for_documents(2)
    assert [d.image.size for d in documents] == [(576, 30), (384, 50)]
    assert np.array_equal(np.asarray(documents[1].image), np.asarray(second))


def test_paper_out_is_reported_and_nothing_is_printed(twin: EscPosPrinterTwin, driver: EscPosPrinter) -> None:
    twin.paper_out = True
    with pytest.raises(PaperOut) as caught:
        driver.print_image(random_bits(20, 576))
    assert caught.value.code == "paper_out"
    assert caught.value.message == f"the printer on {twin.port} is out of paper; nothing was printed"
    assert twin.documents == []
    assert driver.self_test() == DeviceStatus("printer", False, "paper out")


def test_paper_near_end_still_prints_and_warns_in_self_test(twin: EscPosPrinterTwin, driver: EscPosPrinter) -> None:
    twin.paper_near_end = True
    driver.print_image(random_bits(20, 576))
    assert len(twin.wait_for_documents(1)) == 1
    assert driver.self_test() == DeviceStatus(
        "printer", True, "paper near its end: fit a new roll before the polls close"
    )


def test_a_silent_printer_is_a_printer_error_naming_the_port(twin: EscPosPrinterTwin, driver: EscPosPrinter) -> None:
    twin.silent = True
    with pytest.raises(PrinterError) as caught:
        driver.print_image(random_bits(20, 576))
    assert caught.value.message == (
        f"the printer on {twin.port} did not answer the paper status query (DLE EOT 4) within 0.3 s"
    )
    assert driver.self_test().ok is False


def test_a_missing_port_says_which_setting_to_check() -> None:
    with pytest.raises(HardwareUnavailable) as caught:
        EscPosPrinter(PrinterSettings(port="/dev/ballotbox-no-such-printer"))
    assert caught.value.message.startswith("cannot open the printer port /dev/ballotbox-no-such-printer")
    assert "printer.port" in caught.value.remedy


# -- the decoder on its own ------------------------------------------------------------------------


def test_decoder_reassembles_commands_split_across_reads() -> None:
    data = b"\x1b@" + b"".join(raster_commands(random_bits(3, 16))) + b"\n\x10\x04\x04\x1dV\x01"
    decoder = EscPosDecoder()
    commands = [command for byte in data for command in decoder.feed(bytes([byte]))]
    assert [type(c) for c in commands] == [Initialize, RasterImage, LineFeed, StatusQuery, Cut]
    assert commands[3] == StatusQuery(4)
    assert commands[4] == Cut(partial=True)
    assert decoder.pending_bytes == 0


def test_decoder_rejects_an_unknown_command_with_its_offset() -> None:
    with pytest.raises(EscPosProtocolError) as caught:
        decode_documents(b"\x1b@\x1bt\x12")  # ESC t: select code page, never sent by ballotbox
    assert str(caught.value) == (
        "byte offset 2: unknown ESC/POS command 1b 74 (the printer twin understands ESC @, GS v 0, GS V, DLE EOT n, LF)"
    )


def test_decoder_rejects_text() -> None:
    with pytest.raises(EscPosProtocolError, match="byte offset 0: unknown ESC/POS command 48 69"):
        decode_documents(b"Hi\n")


def test_decoder_rejects_scaled_raster() -> None:
    with pytest.raises(EscPosProtocolError, match="raster mode m = 1"):
        decode_documents(b"\x1dv0\x01\x01\x00\x01\x00\xff")


def test_the_twin_reports_bytes_it_cannot_decode(twin: EscPosPrinterTwin) -> None:
    import os

    fd = os.open(twin.port, os.O_WRONLY | os.O_NOCTTY)
    try:
        os.write(fd, b"\x1b@\x1b!\x08")  # ESC ! (print mode) is not ballotbox ESC/POS
    finally:
        os.close(fd)
    with pytest.raises(EscPosProtocolError, match="byte offset 2: unknown ESC/POS command 1b 21"):
        twin.wait_for_documents(1, timeout_s=2.0)
