"""The fingerprint sensor: one conformance suite for every FingerprintSensor that runs here (the real
UART driver over a pseudo-terminal against the module twin, and the in-process simulated sensor),
then the UART driver's protocol cases and error paths against the twin."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.device import FingerprintSensorSettings
from hal.drivers.fingerprint_uart import (
    CONFIRMATION_CODES,
    UartFingerprintSensor,
    encode_packet,
    unpack_image,
)
from hal.drivers.fingerprint_usb import ReaderDescription, UsbFingerprintReader
from hal.errors import DeviceStatus, HardwareUnavailable
from hal.fingerprint import (
    CaptureTimeout,
    FingerprintError,
    FingerprintSensor,
    FrameError,
    NoFinger,
    SensorBusy,
    SensorError,
    SensorNotResponding,
)
from simulator.fingerprint_twin import (
    Fault,
    FingerprintModuleTwin,
    SimulatedFingerprintSensor,
    encode,
    quantise_4bit,
)

# Small images keep the suite fast; one test uploads a whole R307 frame (256 x 288).
WIDTH, HEIGHT = 24, 16


def finger(seed: int = 7, shape: tuple[int, int] = (HEIGHT, WIDTH)) -> np.ndarray:
    """Random grey levels: any nibble lost, swapped or shifted on the way shows."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def settings(port: str, **overrides: Any) -> FingerprintSensorSettings:
    values: dict[str, Any] = {
        "port": port, "image_width": WIDTH, "image_height": HEIGHT, "read_timeout_s": 0.05, "busy_wait_s": 0.15,
        "poll_interval_s": 0.01,
    }
    values.update(overrides)
    return FingerprintSensorSettings(**values)


class FakeUsbFrames:
    """A USB reader's frame source: the desk presents and lifts, frames come back as they are."""

    def __init__(self) -> None:
        self.presented: np.ndarray | None = None
        self.unplugged = False
        self.closed = False

    def present(self, pixels: np.ndarray) -> None:
        self.presented = pixels.copy()

    def lift(self) -> None:
        self.presented = None

    def describe(self) -> ReaderDescription:
        self._check()
        return ReaderDescription("USB optical (fake)", WIDTH, HEIGHT, 500.0)

    def finger_on(self) -> bool:
        self._check()
        return self.presented is not None

    def wait_for_frame(self, timeout_s: float) -> np.ndarray | None:
        self._check()
        return self.presented

    def close(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.unplugged:
            raise OSError("No such device")


@dataclass
class Bench:
    """A sensor under test, the desk's hand on it, and what 4-bit quantisation it applies."""

    sensor: FingerprintSensor
    desk: FingerprintModuleTwin | SimulatedFingerprintSensor | FakeUsbFrames
    delivered: Callable[[np.ndarray], np.ndarray] = quantise_4bit
    capacity: int = 1000


def _bench(kind: str) -> Iterator[Bench]:
    if kind == "in-process-simulator":
        simulated = SimulatedFingerprintSensor((WIDTH, HEIGHT))
        yield Bench(simulated, simulated)
    elif kind == "usb-reader-over-fake-frames":
        frames = FakeUsbFrames()
        yield Bench(UsbFingerprintReader(frames), frames, delivered=lambda pixels: pixels, capacity=0)
    else:
        with FingerprintModuleTwin((WIDTH, HEIGHT)) as module:
            driver = UartFingerprintSensor(settings(module.port))
            yield Bench(driver, module)
            driver.close()


@pytest.fixture(params=["uart-driver-over-pty-twin", "in-process-simulator", "usb-reader-over-fake-frames"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    yield from _bench(request.param)


@pytest.fixture(params=["uart-driver-over-pty-twin", "in-process-simulator"])
def flash_bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    """The sensors with a template flash of their own."""
    yield from _bench(request.param)


@pytest.fixture
def module() -> Iterator[FingerprintModuleTwin]:
    with FingerprintModuleTwin((WIDTH, HEIGHT)) as twin:
        yield twin


@pytest.fixture
def driver(module: FingerprintModuleTwin) -> Iterator[UartFingerprintSensor]:
    sensor = UartFingerprintSensor(settings(module.port))
    yield sensor
    sensor.close()


# -- conformance: every implementation -----------------------------------------------------------------


def test_implements_the_fingerprint_sensor_interface(bench: Bench) -> None:
    assert isinstance(bench.sensor, FingerprintSensor)


def test_handshake_reports_image_size_resolution_and_capacity(bench: Bench) -> None:
    info = bench.sensor.handshake()
    assert (info.image_width, info.image_height, info.dpi, info.template_capacity) == (WIDTH, HEIGHT, 500.0, bench.capacity)


def test_handshake_reports_the_modules_system_parameters(flash_bench: Bench) -> None:
    info = flash_bench.sensor.handshake()
    assert info.parameters["security_level"] == 3
    assert info.parameters["system_id"] == 0x0009


def test_finger_present_follows_the_desk(bench: Bench) -> None:
    assert bench.sensor.finger_present() is False
    bench.desk.present(finger())
    assert bench.sensor.finger_present() is True
    bench.desk.lift()
    assert bench.sensor.finger_present() is False


def test_capture_delivers_the_presented_image_quantised_to_4_bits(bench: Bench) -> None:
    presented = finger(seed=11)
    bench.desk.present(presented)
    image = bench.sensor.capture(timeout_s=1.0)
    assert image.dpi == 500.0
    assert image.pixels.dtype == np.uint8
    assert image.pixels.shape == (HEIGHT, WIDTH)
    assert np.array_equal(image.pixels, bench.delivered(presented))


def test_the_4bit_modules_deliver_level_v_as_v_times_17(flash_bench: Bench) -> None:
    presented = finger(seed=12)
    flash_bench.desk.present(presented)
    assert np.array_equal(flash_bench.sensor.capture(timeout_s=1.0).pixels, (presented >> 4) * 17)


def test_capture_without_a_finger_times_out(bench: Bench) -> None:
    with pytest.raises(CaptureTimeout) as caught:
        bench.sensor.capture(timeout_s=0.05)
    assert isinstance(caught.value, NoFinger)
    assert caught.value.code == "capture_timeout"
    assert caught.value.message == "no finger on the fingerprint sensor within 0.05 s"
    assert "place the finger" in caught.value.remedy


def test_capture_serves_images_from_a_provider() -> None:
    served = [finger(seed=1), finger(seed=2)]
    simulated = SimulatedFingerprintSensor((WIDTH, HEIGHT), provider=lambda: served[0])
    assert np.array_equal(simulated.capture(1.0).pixels, quantise_4bit(served[0]))
    with FingerprintModuleTwin((WIDTH, HEIGHT), provider=lambda: served[1]) as twin:
        sensor = UartFingerprintSensor(settings(twin.port))
        assert np.array_equal(sensor.capture(1.0).pixels, quantise_4bit(served[1]))
        sensor.close()


def test_template_count_and_clear_empty_the_flash(flash_bench: Bench) -> None:
    flash_bench.desk.templates.update({0, 5, 9})
    assert flash_bench.sensor.template_count() == 3
    flash_bench.sensor.clear_templates()
    assert flash_bench.sensor.template_count() == 0
    assert flash_bench.desk.templates == set()


def test_close_leaves_the_template_flash_empty(flash_bench: Bench) -> None:
    flash_bench.desk.templates.update({1, 2})
    flash_bench.sensor.close()
    assert flash_bench.desk.templates == set()


def test_self_test_reports_the_stored_templates(flash_bench: Bench) -> None:
    flash_bench.desk.templates.add(4)
    status = flash_bench.sensor.self_test()
    assert status.device == "fingerprint_sensor"
    assert status.ok is True
    assert "1 of 1000 templates stored" in status.detail


# -- the UART protocol on the wire ------------------------------------------------------------------


def test_packets_are_framed_and_summed_as_the_manual_shows() -> None:
    # VfyPwd with password 0 to the default address (R307 manual example): sum 01+00+07+13 = 0x1b.
    assert encode_packet(0xFFFFFFFF, 0x01, b"\x13\x00\x00\x00\x00") == bytes.fromhex("ef01ffffffff010007130000000000 1b".replace(" ", ""))
    # GenImg: EF 01 FF FF FF FF 01 00 03 01 00 05
    assert encode_packet(0xFFFFFFFF, 0x01, b"\x01") == bytes.fromhex("ef01ffffffff0100030100 05".replace(" ", ""))


@given(address=st.integers(0, 0xFFFFFFFF), identifier=st.sampled_from([1, 2, 7, 8]), payload=st.binary(max_size=256))
def test_driver_and_twin_frame_packets_identically(address: int, identifier: int, payload: bytes) -> None:
    assert encode_packet(address, identifier, payload) == encode(address, identifier, payload)


@given(st.binary(min_size=1, max_size=64))
def test_image_unpacking_takes_the_high_nibble_first(data: bytes) -> None:
    pixels = unpack_image(data, len(data) * 2, 1)
    assert pixels[0, 0::2].tolist() == [(b >> 4) * 17 for b in data]
    assert pixels[0, 1::2].tolist() == [(b & 15) * 17 for b in data]


def test_the_driver_sends_vfypwd_then_readsyspara(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    driver.handshake()
    assert module.commands == [0x13, 0x0F]


def test_the_handshake_command_is_sent_when_the_module_has_it(module: FingerprintModuleTwin) -> None:
    sensor = UartFingerprintSensor(settings(module.port, use_handshake_command=True, clear_on_close=False))
    sensor.handshake()
    assert module.commands == [0x40, 0x13, 0x0F]
    sensor.close()


def test_a_whole_r307_frame_uploads_byte_exact_in_every_packet_size() -> None:
    presented = finger(seed=3, shape=(288, 256))
    for packet_bytes in (32, 256):
        with FingerprintModuleTwin(packet_bytes=packet_bytes) as twin:
            sensor = UartFingerprintSensor(FingerprintSensorSettings(port=twin.port, read_timeout_s=0.05))
            assert sensor.handshake().parameters["packet_bytes"] == packet_bytes
            twin.present(presented)
            started = time.perf_counter()
            image = sensor.capture(timeout_s=1.0)
            assert time.perf_counter() - started < 5.0
            assert image.pixels.shape == (288, 256)
            assert np.array_equal(image.pixels, quantise_4bit(presented))
            assert twin.commands[-2:] == [0x01, 0x0A]  # GenImg, UpImage
            sensor.close()


def test_capture_waits_for_a_finger_that_comes_late(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    calls = {"n": 0}
    late = finger(seed=5)

    def after_three_looks() -> np.ndarray | None:
        calls["n"] += 1
        return late if calls["n"] > 3 else None

    module._provider = after_three_looks
    assert np.array_equal(driver.capture(timeout_s=2.0).pixels, quantise_4bit(late))
    assert module.commands.count(0x01) == 4


def test_empty_is_verified_with_templatenum(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    module.templates.update(range(7))
    driver.clear_templates()
    assert module.commands == [0x0D, 0x1D]


# -- faults ------------------------------------------------------------------------------------------


def test_garbage_before_the_header_is_skipped(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    module.templates.update({3, 4})
    module.inject(Fault.GARBAGE)
    assert driver.template_count() == 2
    assert module.commands == [0x1D]  # resynchronised on the same answer, nothing resent


@pytest.mark.parametrize("fault", [Fault.GARBLED_BYTE, Fault.SHORT_FRAME, Fault.BAD_CHECKSUM, Fault.WRONG_ADDRESS])
def test_one_bad_frame_is_resent_and_recovered(
    module: FingerprintModuleTwin, driver: UartFingerprintSensor, fault: Fault
) -> None:
    module.templates.add(8)
    module.inject(fault)
    assert driver.template_count() == 1
    assert module.commands == [0x1D, 0x1D]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.GARBLED_BYTE, "sent a bad checksum"),
        (Fault.BAD_CHECKSUM, "sent a bad checksum"),
        (Fault.SHORT_FRAME, "sent a short frame: 7 bytes, the header alone is 9"),
        (Fault.WRONG_ADDRESS, "sent a packet from address 0xfffffffe, this module is 0xffffffff"),
    ],
)
def test_a_persistent_bad_frame_is_a_frame_error(
    module: FingerprintModuleTwin, driver: UartFingerprintSensor, fault: Fault, message: str
) -> None:
    module.inject(fault, count=3)  # the first try and both resends
    with pytest.raises(FrameError) as caught:
        driver.template_count()
    assert caught.value.code == "sensor_frame_error"
    assert message in caught.value.message
    assert caught.value.message.startswith(f"the fingerprint sensor on {module.port} ")
    assert module.commands == [0x1D, 0x1D, 0x1D]


def test_a_bad_frame_in_the_image_upload_uploads_again(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    presented = finger(seed=9)
    driver.handshake()
    module.present(presented)
    assert driver.finger_present() is True
    module.inject(Fault.BAD_CHECKSUM, instruction=0x01)  # damages GenImg's ack: resent
    module.inject(Fault.SHORT_FRAME, instruction=0x0A)  # cuts the end-of-data packet: uploaded again
    image = driver.capture(timeout_s=1.0)
    assert np.array_equal(image.pixels, quantise_4bit(presented))
    assert module.commands == [0x13, 0x0F, 0x01, 0x01, 0x01, 0x0A, 0x0A]


def test_a_packet_receive_error_is_resent(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    module.inject(Fault.RECEIVE_ERROR, count=2)
    assert driver.template_count() == 0
    assert module.commands == [0x1D, 0x1D, 0x1D]


def test_a_persistent_packet_receive_error_names_the_code(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    module.inject(Fault.RECEIVE_ERROR, count=3)
    with pytest.raises(SensorError) as caught:
        driver.template_count()
    assert (caught.value.confirmation, caught.value.meaning) == (0x01, "packet receive error")
    assert caught.value.message == (
        f"the fingerprint sensor on {module.port} refused TemplateNum: confirmation code 0x01 (packet receive error)"
    )


def test_a_corrupted_command_is_answered_with_a_receive_error(module: FingerprintModuleTwin) -> None:
    fd = os.open(module.port, os.O_RDWR | os.O_NOCTTY)
    try:
        bad = bytearray(encode(0xFFFFFFFF, 0x01, b"\x1d"))
        bad[-1] ^= 0xFF
        os.write(fd, bytes(bad))
        deadline = time.monotonic() + 2.0
        answer = b""
        while len(answer) < 12 and time.monotonic() < deadline:
            answer += os.read(fd, 64)
    finally:
        os.close(fd)
    assert answer == encode(0xFFFFFFFF, 0x07, b"\x01")


def test_a_wrong_password_is_a_sensor_error_naming_the_setting(module: FingerprintModuleTwin) -> None:
    module.password = 0x12345678
    sensor = UartFingerprintSensor(settings(module.port, clear_on_close=False))
    with pytest.raises(SensorError) as caught:
        sensor.handshake()
    assert caught.value.confirmation == 0x13
    assert caught.value.meaning == "wrong password"
    assert "fingerprint.password" in caught.value.remedy
    assert sensor.self_test() == DeviceStatus("fingerprint_sensor", False, caught.value.message)
    sensor.close()


def test_a_module_that_does_not_answer_is_not_responding(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    module.inject(Fault.NO_ANSWER)  # not resent: the module may be gone
    with pytest.raises(SensorNotResponding) as caught:
        driver.template_count()
    assert caught.value.message == f"the fingerprint sensor on {module.port} did not answer within 0.2 s"
    assert "fingerprint.baudrate" in caught.value.remedy


def test_a_wrong_address_gets_no_answer(module: FingerprintModuleTwin) -> None:
    sensor = UartFingerprintSensor(settings(module.port, address=0x00000001, clear_on_close=False))
    with pytest.raises(SensorNotResponding):
        sensor.handshake()
    assert module.commands == []
    sensor.close()


def test_a_slow_module_within_the_busy_wait_is_waited_for(module: FingerprintModuleTwin) -> None:
    module.answer_delay_s = 0.2  # four read timeouts
    sensor = UartFingerprintSensor(settings(module.port, busy_wait_s=0.6, clear_on_close=False))
    module.templates.add(1)
    assert sensor.template_count() == 1
    sensor.close()


def test_a_module_answering_after_the_busy_wait_is_busy(module: FingerprintModuleTwin) -> None:
    module.answer_delay_s = 0.25
    sensor = UartFingerprintSensor(settings(module.port, busy_wait_s=0.1, read_timeout_s=0.4, clear_on_close=False))
    with pytest.raises(SensorBusy) as caught:
        sensor.template_count()
    assert caught.value.code == "sensor_busy"
    assert caught.value.message == f"the fingerprint sensor on {module.port} answered after more than 0.1 s"
    module.answer_delay_s = 0.0
    assert sensor.template_count() == 0  # the late answer was dropped, the next one is read cleanly
    sensor.close()


def test_upimage_without_a_captured_image_cannot_upload(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    driver.handshake()
    with pytest.raises(SensorError) as caught:
        driver._upload_image()
    assert caught.value.confirmation == 0x0F
    assert caught.value.meaning == "error uploading the image"


def test_an_image_of_the_wrong_size_is_a_frame_error() -> None:
    with FingerprintModuleTwin((WIDTH, HEIGHT)) as twin:
        sensor = UartFingerprintSensor(settings(twin.port, image_width=WIDTH * 2, clear_on_close=False))
        twin.present(finger())
        with pytest.raises(FrameError, match=r"the image ended after 192 bytes, expected 384 \(48 x 16"):
            sensor.capture(timeout_s=1.0)
        sensor.close()


def test_a_flash_that_will_not_empty_is_reported(module: FingerprintModuleTwin, driver: UartFingerprintSensor) -> None:
    module.templates.add(2)
    original = module._handle

    def empty_fails(instruction: int, params: bytes) -> list[tuple[int, bytes]]:
        if instruction == 0x0D:
            return [(0x07, b"\x11")]
        return original(instruction, params)

    module._handle = empty_fails  # type: ignore[method-assign]
    with pytest.raises(SensorError) as caught:
        driver.clear_templates()
    assert caught.value.meaning == "failed to clear the fingerprint library"
    module._handle = original  # type: ignore[method-assign]


def test_close_reports_a_flash_it_could_not_empty_and_still_closes(module: FingerprintModuleTwin) -> None:
    sensor = UartFingerprintSensor(settings(module.port))
    module.templates.add(1)
    module.inject(Fault.NO_ANSWER)  # Empty's answer is lost: the driver cannot know the flash is empty
    with pytest.raises(SensorNotResponding):
        sensor.close()
    sensor.close()  # the port was closed all the same: nothing more to do
    with pytest.raises(FingerprintError, match="was closed"):
        sensor.template_count()


def test_every_confirmation_code_has_a_meaning_and_a_remedy() -> None:
    assert {0x01, 0x02, 0x03, 0x06, 0x07, 0x0E, 0x0F, 0x11, 0x13, 0x15, 0x18} <= CONFIRMATION_CODES.keys()
    assert all(meaning and remedy for meaning, remedy in CONFIRMATION_CODES.values())


def test_a_missing_port_says_which_setting_to_check() -> None:
    with pytest.raises(HardwareUnavailable) as caught:
        UartFingerprintSensor(FingerprintSensorSettings(port="/dev/ballotbox-no-such-sensor"))
    assert caught.value.message.startswith("cannot open the fingerprint sensor port /dev/ballotbox-no-such-sensor")
    assert "fingerprint.port" in caught.value.remedy


# -- the packet reader on recorded bytes (property tests) ---------------------------------------------


class RecordedPort:
    """A serial port that plays back bytes: read() returns what is left (never waits)."""

    def __init__(self, data: bytes) -> None:
        self._data = bytearray(data)
        self.timeout = 0.0

    def read(self, size: int) -> bytes:
        chunk = bytes(self._data[:size])
        del self._data[:size]
        return chunk

    def write(self, data: bytes) -> int:
        return len(data)

    def reset_input_buffer(self) -> None:
        pass

    def close(self) -> None:
        pass


def reader_on(data: bytes) -> UartFingerprintSensor:
    return UartFingerprintSensor.over_port(
        settings("recorded", read_timeout_s=0.001, busy_wait_s=0.001, clear_on_close=False), RecordedPort(data)
    )


@given(
    noise=st.binary(max_size=40).filter(lambda b: b"\xef" not in b),
    identifier=st.sampled_from([2, 7, 8]),
    payload=st.binary(max_size=256),
)
def test_the_reader_finds_a_packet_after_any_noise(noise: bytes, identifier: int, payload: bytes) -> None:
    sensor = reader_on(noise + encode(0xFFFFFFFF, identifier, payload))
    assert sensor._read_packet(0.001) == (identifier, payload)


@given(st.binary(max_size=300))
def test_random_bytes_are_a_packet_or_a_fingerprint_error_never_a_crash(data: bytes) -> None:
    sensor = reader_on(data)
    try:
        identifier, payload = sensor._read_packet(0.001)
    except (FrameError, SensorNotResponding, SensorBusy):
        return
    assert identifier in (1, 2, 7, 8)
    assert encode(0xFFFFFFFF, identifier, payload) in data


@given(payload=st.binary(min_size=1, max_size=64), cut=st.integers(0, 10))
def test_a_truncated_packet_is_a_frame_error(payload: bytes, cut: int) -> None:
    frame = encode(0xFFFFFFFF, 0x07, payload)
    with pytest.raises(FrameError, match="short frame"):
        reader_on(frame[: len(frame) - 1 - cut])._read_packet(0.001)


# -- the USB reader shape --------------------------------------------------------------------------


def test_a_usb_reader_has_no_flash_and_nothing_to_empty() -> None:
    frames = FakeUsbFrames()
    reader = UsbFingerprintReader(frames)
    assert reader.template_count() == 0
    reader.clear_templates()
    assert reader.self_test() == DeviceStatus("fingerprint_sensor", True, "USB optical (fake) answering, 24 x 16 at 500 dpi")
    reader.close()
    assert frames.closed is True


def test_an_unplugged_usb_reader_is_not_responding() -> None:
    frames = FakeUsbFrames()
    frames.unplugged = True
    reader = UsbFingerprintReader(frames)
    with pytest.raises(SensorNotResponding, match="lost the USB fingerprint reader: No such device"):
        reader.capture(timeout_s=0.1)
    assert reader.self_test().ok is False


def test_a_usb_frame_of_the_wrong_size_is_a_frame_error() -> None:
    frames = FakeUsbFrames()
    reader = UsbFingerprintReader(frames)
    frames.present(finger(shape=(HEIGHT + 1, WIDTH)))
    with pytest.raises(FrameError, match=r"delivered a uint8 \(17, 24\) frame, expected uint8 \(16, 24\)"):
        reader.capture(timeout_s=0.1)


def test_handshake_reads_a_real_modules_system_parameters() -> None:
    # A ReadSysPara answer dumped from a module with a 200-template library (packet size code 2 =
    # 128 bytes, baud N = 6), preceded by VfyPwd's OK.
    vfypwd_ok = bytes.fromhex("ef01ffffffff07000300000a")
    readsyspara = bytes.fromhex("ef01ffffffff07001300" "0000" "0000" "00c8" "0003" "ffffffff" "0002" "0006" "04e9")
    info = reader_on(vfypwd_ok + readsyspara).handshake()
    assert info.template_capacity == 200
    assert info.parameters == {
        "status_register": 0, "system_id": 0, "security_level": 3, "address": 0xFFFFFFFF,
        "packet_bytes": 128, "baudrate": 57600,
    }
