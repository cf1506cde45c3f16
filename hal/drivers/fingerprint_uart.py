"""The fingerprint module on a UART: the R30x / AS608 / ZFM family and its 0xEF01 packet protocol.

Every packet, both ways (big-endian):

    EF 01 | address (4) | identifier (1) | length (2) | payload (length - 2) | checksum (2)

    identifier  0x01 command, 0x02 data (more follow), 0x07 acknowledge, 0x08 end of data
    length      payload bytes + the 2 checksum bytes
    checksum    low 16 bits of identifier + both length bytes + every payload byte

A command payload is the instruction code and its parameters; an acknowledge payload is the
confirmation code and the results. Instructions used (R307 user manual, "Module instruction system";
the same codes in vishnumaiea/R30X-Fingerprint-Sensor-Library src/R30X_Fingerprint.h and the Adafruit
fingerprint library):

    0x13 VfyPwd       password (4)                  -> confirmation
    0x40 Handshake    (R50x modules only)           -> confirmation
    0x0F ReadSysPara                                -> confirmation + 16 bytes of system parameters:
                      status register (2), system identifier (2), library size (2), security level (2),
                      address (4), data packet size code (2), baud rate N (2)
    0x01 GenImg       capture an image if a finger is on -> confirmation (0x02 = no finger)
    0x0A UpImage      upload the image buffer       -> confirmation, then data packets ... end packet,
                      4 bits per pixel, two pixels a byte (high nibble first), row by row
    0x1D TemplateNum                                -> confirmation + count (2)
    0x0D Empty        delete every template in the flash -> confirmation

Image upload time on the wire (computed, not measured on a module): a 256 x 288 image is 36,864
bytes, in 288 packets of 128 bytes plus 11 bytes of framing each, 40,032 bytes x 10 bits = 7.0 s at
57600 baud and 3.5 s at 115200 (baud N = 12, set with SetSysPara): the capture loop should plan for it.

Reading is bounded everywhere: each serial read has read_timeout_s; a command's answer may take up
to busy_wait_s (GenImg scans the sensor); bytes before a header are skipped (line noise, a module
talking at power-up); a frame that is short, has a bad checksum, a foreign address or an unknown
identifier is a FrameError, and the command is resent (at most `retries` times), as it is after the
module's own "packet receive error" (0x01).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from config.device import FingerprintSensorSettings
from hal.drivers.serial_port import open_serial
from hal.errors import DeviceStatus
from hal.fingerprint import (
    CaptureTimeout,
    FingerImage,
    FingerprintError,
    FrameError,
    SensorBusy,
    SensorError,
    SensorInfo,
    SensorNotResponding,
)

if TYPE_CHECKING:
    import serial

HEADER = b"\xef\x01"
COMMAND_PACKET = 0x01
DATA_PACKET = 0x02
ACK_PACKET = 0x07
END_DATA_PACKET = 0x08
_IDENTIFIERS = (COMMAND_PACKET, DATA_PACKET, ACK_PACKET, END_DATA_PACKET)

GEN_IMG = 0x01
UP_IMAGE = 0x0A
EMPTY = 0x0D
READ_SYS_PARA = 0x0F
VFY_PWD = 0x13
TEMPLATE_NUM = 0x1D
HANDSHAKE = 0x40

OK = 0x00
PACKET_RECEIVE_ERROR = 0x01
NO_FINGER = 0x02

# Confirmation codes and what they mean (R307 user manual, "Definition of confirmation code"; the same
# list in vishnumaiea/R30X-Fingerprint-Sensor-Library src/R30X_Fingerprint.h, and the Zephyr
# GROW_R502A driver's grow_r502a.h). The remedy is what the operator or technician can do about it.
CONFIRMATION_CODES: dict[int, tuple[str, str]] = {
    0x01: ("packet receive error", "check the sensor cable; the command was resent and still failed"),
    0x02: ("no finger on the sensor", "ask the voter to place the finger flat on the sensor"),
    0x03: ("failed to capture the finger", "ask the voter to lift the finger and place it again"),
    0x06: ("image too disorderly to generate a character file", "ask the voter to place the finger again"),
    0x07: ("too few feature points in the image", "ask the voter to press the finger a little more"),
    0x08: ("the finger does not match", "ask the voter to place the finger again"),
    0x09: ("no matching template found", "ask the voter to place the finger again"),
    0x0A: ("failed to combine the character files", "enrol the finger again"),
    0x0B: ("template page number beyond the library", "report a software fault to the technician"),
    0x0C: ("error reading the template from the library, or the template is invalid", "call the technician"),
    0x0D: ("error uploading the template", "check the sensor cable, then try again"),
    0x0E: ("the module cannot receive the following data packets", "check the sensor cable, then try again"),
    0x0F: ("error uploading the image", "check the sensor cable, then capture again"),
    0x10: ("failed to delete the template", "try again; if it persists, replace the sensor module"),
    0x11: ("failed to clear the fingerprint library", "try again; if it persists, replace the sensor module"),
    0x13: ("wrong password", "set fingerprint.password in the device settings to the module's password"),
    0x15: ("no valid primary image in the buffer", "capture the finger again"),
    0x18: ("error writing the flash", "replace the sensor module"),
    0x19: ("undefined error", "power the sensor off and on, then try again"),
    0x1A: ("invalid register number", "report a software fault to the technician"),
    0x1B: ("incorrect register configuration", "report a software fault to the technician"),
    0x1C: ("wrong notepad page number", "report a software fault to the technician"),
    0x1D: ("failed to operate the communication port", "power the sensor off and on, then try again"),
}

# The data packet size in the system parameters is a code, not a byte count (R307 manual, SetSysPara
# parameter 6: 0 = 32, 1 = 64, 2 = 128, 3 = 256 bytes).
PACKET_BYTES = {0: 32, 1: 64, 2: 128, 3: 256}
# The module's baud rate in the system parameters is N, the rate being N x 9600 (manual, parameter 4).
BAUD_UNIT = 9600
# A frame longer than the largest data packet plus the checksum is not this protocol: a garbled length.
_MAX_LENGTH = max(PACKET_BYTES.values()) + 2
# Bytes skipped while looking for a header before giving up: two whole largest packets of noise.
_MAX_GARBAGE = 2 * (_MAX_LENGTH + 9)


def encode_packet(address: int, identifier: int, payload: bytes) -> bytes:
    """One packet on the wire (header, address, identifier, length, payload, checksum)."""
    length = len(payload) + 2
    checksum = (identifier + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF
    return (
        HEADER + address.to_bytes(4, "big") + bytes([identifier]) + length.to_bytes(2, "big")
        + payload + checksum.to_bytes(2, "big")
    )


def unpack_image(data: bytes, width: int, height: int) -> np.ndarray:
    """The image UpImage sends (4 bits a pixel, high nibble first) as uint8 pixels, each 4-bit level
    v spread to v * 17 so 0 stays black and 15 becomes 255."""
    packed = np.frombuffer(data, dtype=np.uint8)
    nibbles = np.empty(packed.size * 2, dtype=np.uint8)
    nibbles[0::2] = packed >> 4
    nibbles[1::2] = packed & 0x0F
    return (nibbles * 17).reshape(height, width)


class UartFingerprintSensor:
    """hal.fingerprint.FingerprintSensor on a serial port (pyserial), speaking the 0xEF01 protocol."""

    def __init__(self, settings: FingerprintSensorSettings) -> None:
        if settings.image_width * settings.image_height % 2:
            raise ValueError("the module sends two pixels a byte: image_width x image_height must be even")
        self._settings = settings
        self._info: SensorInfo | None = None
        self._port: serial.Serial | None
        self._port, self._serial_errors = open_serial(
            settings.port, baudrate=settings.baudrate, timeout=settings.read_timeout_s,
            write_timeout=settings.read_timeout_s, device="fingerprint sensor",
            remedy="check the sensor cable, and that fingerprint.port in the device settings names its serial device")

    @classmethod
    def over_port(cls, settings: FingerprintSensorSettings, port: serial.Serial) -> UartFingerprintSensor:
        """The driver on a port that is already open (pyserial's Serial or anything with its read,
        write, reset_input_buffer, timeout and close), e.g. a recorded byte stream in a test."""
        import serial

        sensor = cls.__new__(cls)
        sensor._settings = settings
        sensor._info = None
        sensor._serial_errors = (serial.SerialException, OSError)
        sensor._port = port
        return sensor

    # -- the FingerprintSensor interface -------------------------------------------------------------

    def handshake(self) -> SensorInfo:
        if self._settings.use_handshake_command:
            self._command_ok(HANDSHAKE, b"", "Handshake")
        self._command_ok(VFY_PWD, self._settings.password.to_bytes(4, "big"), "VfyPwd")
        params = self._command_ok(READ_SYS_PARA, b"", "ReadSysPara")
        if len(params) != 16:
            raise FrameError(
                f"the fingerprint sensor on {self._settings.port} sent {len(params)} bytes of system parameters, "
                "expected 16",
                "check fingerprint.model in the device settings: this module may not be of the R30x family",
            )
        size_code = int.from_bytes(params[12:14], "big")
        if size_code not in PACKET_BYTES:
            raise FrameError(
                f"the fingerprint sensor on {self._settings.port} reported data packet size code {size_code}, "
                "expected 0..3",
                "power the sensor off and on; if it persists, replace the sensor module",
            )
        s = self._settings
        self._info = SensorInfo(
            model=s.model,
            image_width=s.image_width,
            image_height=s.image_height,
            dpi=s.dpi,
            template_capacity=int.from_bytes(params[4:6], "big"),
            parameters={
                "status_register": int.from_bytes(params[0:2], "big"),
                "system_id": int.from_bytes(params[2:4], "big"),
                "security_level": int.from_bytes(params[6:8], "big"),
                "address": int.from_bytes(params[8:12], "big"),
                "packet_bytes": PACKET_BYTES[size_code],
                "baudrate": int.from_bytes(params[14:16], "big") * BAUD_UNIT,
            },
        )
        return self._info

    def finger_present(self) -> bool:
        confirmation, _ = self._command(GEN_IMG, b"")
        if confirmation == NO_FINGER:
            return False
        self._check(confirmation, "GenImg")
        return True

    def capture(self, timeout_s: float) -> FingerImage:
        if self._info is None:
            self.handshake()
        deadline = time.monotonic() + timeout_s
        while not self.finger_present():
            if time.monotonic() >= deadline:
                raise CaptureTimeout(
                    f"no finger on the fingerprint sensor within {timeout_s:g} s",
                    "ask the voter to place the finger flat on the sensor, then capture again",
                )
            time.sleep(self._settings.poll_interval_s)
        return FingerImage(self._upload_image(), self._settings.dpi)

    def template_count(self) -> int:
        result = self._command_ok(TEMPLATE_NUM, b"", "TemplateNum")
        if len(result) != 2:
            raise self._frame_error(f"TemplateNum answered with {len(result)} result bytes, expected 2")
        return int.from_bytes(result, "big")

    def clear_templates(self) -> None:
        self._command_ok(EMPTY, b"", "Empty")
        left = self.template_count()
        if left:
            raise FingerprintError(
                f"the fingerprint sensor on {self._settings.port} still holds {left} templates after Empty",
                "do not hand the box over: replace the sensor module and destroy the old one",
            )

    def self_test(self) -> DeviceStatus:
        try:
            info = self.handshake()
            count = self.template_count()
        except FingerprintError as exc:
            return DeviceStatus("fingerprint_sensor", False, exc.message)
        return DeviceStatus(
            "fingerprint_sensor", True,
            f"{info.model} answering on {self._settings.port}, {count} of {info.template_capacity} templates stored",
        )

    def close(self) -> None:
        if self._port is None:
            return
        try:
            if self._settings.clear_on_close:
                self.clear_templates()
        finally:
            self._port.close()
            self._port = None

    # -- the image upload ----------------------------------------------------------------------------

    def _upload_image(self) -> np.ndarray:
        assert self._info is not None
        s = self._settings
        expected = s.image_width * s.image_height // 2
        packet_bytes = self._info.parameters["packet_bytes"]
        for attempt in range(s.retries + 1):
            confirmation, _ = self._command(UP_IMAGE, b"")
            self._check(confirmation, "UpImage")
            try:
                data = self._read_data(expected, packet_bytes)
            except FrameError:
                if attempt == s.retries:
                    raise
                self._drain()
                continue
            return unpack_image(data, s.image_width, s.image_height)
        raise AssertionError("unreachable")

    def _read_data(self, expected: int, packet_bytes: int) -> bytes:
        data = bytearray()
        while True:
            identifier, payload = self._read_packet(self._settings.busy_wait_s)
            if identifier not in (DATA_PACKET, END_DATA_PACKET):
                raise self._frame_error(f"a packet with identifier 0x{identifier:02x} in the middle of the image")
            if len(payload) > packet_bytes:
                raise self._frame_error(f"an image data packet of {len(payload)} bytes, the module's size is {packet_bytes}")
            data += payload
            if len(data) > expected:
                raise self._frame_error(f"more than {expected} bytes of image data")
            if identifier == END_DATA_PACKET:
                break
        if len(data) != expected:
            raise self._frame_error(
                f"the image ended after {len(data)} bytes, expected {expected} "
                f"({self._settings.image_width} x {self._settings.image_height} at 4 bits a pixel)"
            )
        return bytes(data)

    # -- commands and packets ------------------------------------------------------------------------

    def _command_ok(self, instruction: int, params: bytes, name: str) -> bytes:
        confirmation, result = self._command(instruction, params)
        self._check(confirmation, name)
        return result

    def _command(self, instruction: int, params: bytes) -> tuple[int, bytes]:
        """Send a command and return (confirmation, results) of its acknowledge, resending after a bad
        frame or a packet receive error."""
        s = self._settings
        for attempt in range(s.retries + 1):
            port = self._open_port()
            try:
                port.reset_input_buffer()  # a late answer to an earlier command must not pass for this one
                port.write(encode_packet(s.address, COMMAND_PACKET, bytes([instruction]) + params))
            except self._serial_errors as exc:
                raise self._lost(exc) from exc
            try:
                identifier, payload = self._read_packet(s.busy_wait_s)
                if identifier != ACK_PACKET or not payload:
                    raise self._frame_error(
                        f"answered instruction 0x{instruction:02x} with a packet of identifier 0x{identifier:02x} "
                        f"and {len(payload)} payload bytes, expected an acknowledge"
                    )
            except FrameError:
                if attempt == s.retries:
                    raise
                self._drain()
                continue
            if payload[0] == PACKET_RECEIVE_ERROR and attempt < s.retries:
                continue
            return payload[0], bytes(payload[1:])
        raise AssertionError("unreachable")

    def _check(self, confirmation: int, name: str) -> None:
        if confirmation == OK:
            return
        meaning, remedy = CONFIRMATION_CODES.get(confirmation, ("unknown confirmation code", "call the technician"))
        raise SensorError(
            f"the fingerprint sensor on {self._settings.port} refused {name}: "
            f"confirmation code 0x{confirmation:02x} ({meaning})",
            remedy, confirmation, meaning,
        )

    def _read_packet(self, wait_s: float) -> tuple[int, bytes]:
        """The next packet (identifier, payload): bytes before a header are skipped; the first byte
        may take up to `wait_s`, each later read up to read_timeout_s."""
        s = self._settings
        port = self._open_port()
        window = self._first_byte(port, wait_s)
        received = 1
        while window != HEADER:  # resynchronise: slide over bytes until EF 01
            if received > _MAX_GARBAGE:
                raise self._frame_error(f"{received} bytes without a packet header (EF 01)")
            more = self._read(port, 1)
            if not more:
                raise self._frame_error(f"a short frame: {received} bytes and no packet header (EF 01)")
            received += 1
            window = (window + more)[-2:]
        head = self._read(port, 7)
        if len(head) < 7:
            raise self._frame_error(f"a short frame: {2 + len(head)} bytes, the header alone is 9")
        address = int.from_bytes(head[0:4], "big")
        identifier = head[4]
        length = int.from_bytes(head[5:7], "big")
        if address != s.address:
            raise self._frame_error(
                f"a packet from address 0x{address:08x}, this module is 0x{s.address:08x}",
                "set fingerprint.address in the device settings to the module's address",
            )
        if identifier not in _IDENTIFIERS:
            raise self._frame_error(f"a packet with unknown identifier 0x{identifier:02x}")
        if not 2 <= length <= _MAX_LENGTH:
            raise self._frame_error(f"a packet length of {length}, expected 2..{_MAX_LENGTH}")
        body = self._read(port, length)
        if len(body) < length:
            raise self._frame_error(f"a short frame: {len(body)} of {length} bytes after the header")
        payload, checksum = body[:-2], int.from_bytes(body[-2:], "big")
        expected = (identifier + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF
        if checksum != expected:
            raise self._frame_error(f"a bad checksum 0x{checksum:04x}, the packet sums to 0x{expected:04x}")
        return identifier, payload

    def _first_byte(self, port: serial.Serial, wait_s: float) -> bytes:
        """The first byte of an answer, waiting up to wait_s (a busy module answers late). Nothing in
        wait_s: SensorBusy if the answer comes within one more read timeout, else SensorNotResponding."""
        s = self._settings
        deadline = time.monotonic() + wait_s
        try:
            while (left := deadline - time.monotonic()) > 0:
                port.timeout = min(s.read_timeout_s, left)  # no read runs past the bounded wait
                byte = self._read(port, 1)
                if byte:
                    return byte
        finally:
            port.timeout = s.read_timeout_s
        late = self._read(port, 1)
        if late:
            self._drain()
            raise SensorBusy(
                f"the fingerprint sensor on {s.port} answered after more than {wait_s:g} s",
                "wait a moment and try again; if it keeps happening, power the sensor off and on",
            )
        raise SensorNotResponding(
            f"the fingerprint sensor on {s.port} did not answer within {wait_s + s.read_timeout_s:g} s",
            "check that the sensor is plugged in and powered, and that the device settings name the right port "
            "(fingerprint.port), baud rate (fingerprint.baudrate) and address (fingerprint.address)",
        )

    def _read(self, port: serial.Serial, size: int) -> bytes:
        try:
            return bytes(port.read(size))
        except self._serial_errors as exc:
            raise self._lost(exc) from exc

    def _drain(self) -> None:
        """Drop what is left of a bad answer: read until the line is quiet for one read timeout."""
        port = self._open_port()
        while self._read(port, 4096):
            pass

    def _frame_error(self, what: str, remedy: str = "") -> FrameError:
        return FrameError(
            f"the fingerprint sensor on {self._settings.port} sent {what}",
            remedy or "check the sensor cable and that fingerprint.baudrate matches the module, then try again",
        )

    def _lost(self, exc: Exception) -> FingerprintError:
        return FingerprintError(
            f"lost the fingerprint sensor on {self._settings.port}: {exc}", "check the sensor cable and power"
        )

    def _open_port(self) -> serial.Serial:
        if self._port is None:
            raise FingerprintError(
                f"the fingerprint sensor on {self._settings.port} was closed", "restart the ballotbox service"
            )
        return self._port
