"""A fingerprint module twin that speaks the R30x / AS608 0xEF01 packet protocol on a pseudo-terminal,
so the real UartFingerprintSensor driver runs unchanged against it (it opens `twin.port` with
pyserial), and an in-process simulated sensor for the fast simulated day.

The twin writes and reads packets with its own code (not the driver's), so a driver that frames,
sums or splits wrongly is caught here. It answers VfyPwd, Handshake, ReadSysPara, GenImg, UpImage,
TemplateNum, Empty and Store (enrolment, so a test can fill the flash); a command with a bad checksum
is answered with "packet receive error" (0x01), as a module does.

    with FingerprintModuleTwin(image_size=(32, 16)) as module:
        sensor = UartFingerprintSensor(FingerprintSensorSettings(port=module.port, image_width=32, image_height=16))
        module.present(pixels)                        # the simulated desk puts a finger on
        image = sensor.capture(timeout_s=1.0)         # quantise_4bit(pixels) comes back
        module.inject(Fault.BAD_CHECKSUM)             # the next answer is damaged

Faults: `inject(fault, count)` damages the next `count` answers (garbage before the header, a
garbled byte, a short frame, a bad checksum, a foreign address, no answer, packet receive error);
`answer_delay_s` makes every answer late (a busy module); `password` other than the driver's gives
"wrong password"; lift() gives "no finger".
"""

from __future__ import annotations

import enum
import os
import select
import threading
import time
from collections.abc import Callable

import numpy as np

from hal.errors import DeviceStatus
from hal.fingerprint import CaptureTimeout, FingerImage, SensorInfo
from simulator.pty_twin import ServedPtyTwin

ImageProvider = Callable[[], "np.ndarray | None"]

_HEADER = b"\xef\x01"
# Confirmation codes the twin answers with (R307 user manual, "Definition of confirmation code").
_OK, _RECEIVE_ERROR, _NO_FINGER, _UPLOAD_FAIL, _BAD_LOCATION, _WRONG_PASSWORD, _NO_IMAGE = (
    0x00, 0x01, 0x02, 0x0F, 0x0B, 0x13, 0x15
)
# R307 factory values: system identifier 0x0009 (as in the manual's ReadSysPara example), a library
# of 1000 templates, security level 3.
_SYSTEM_ID = 0x0009
_SECURITY_LEVEL = 3
_PACKET_SIZE_CODES = {32: 0, 64: 1, 128: 2, 256: 3}


class Fault(enum.Enum):
    GARBAGE = "garbage bytes before the header (the driver resynchronises)"
    GARBLED_BYTE = "one payload byte flipped (a bad checksum)"
    SHORT_FRAME = "the answer cut off halfway"
    BAD_CHECKSUM = "the checksum off by one"
    WRONG_ADDRESS = "the answer from another address"
    NO_ANSWER = "no answer at all"
    RECEIVE_ERROR = "confirmation 0x01, packet receive error"


def quantise_4bit(pixels: np.ndarray) -> np.ndarray:
    """What an image looks like after a 4-bit module: level v = pixel >> 4, delivered as v * 17."""
    return (np.asarray(pixels, dtype=np.uint8) >> 4) * np.uint8(17)


def encode(address: int, identifier: int, payload: bytes) -> bytes:
    length = len(payload) + 2
    checksum = (identifier + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF
    return _HEADER + address.to_bytes(4, "big") + bytes([identifier, length >> 8, length & 0xFF]) + payload + (
        checksum.to_bytes(2, "big")
    )


class FingerprintModuleTwin(ServedPtyTwin):
    """A fingerprint module behind a pseudo-terminal. `port` is the path a driver opens."""

    name = "fingerprint module twin"

    def __init__(
        self,
        image_size: tuple[int, int] = (256, 288),
        provider: ImageProvider | None = None,
        *,
        address: int = 0xFFFFFFFF,
        password: int = 0,
        packet_bytes: int = 128,
        capacity: int = 1000,
        baudrate: int = 57600,
        handshake_command: bool = True,
    ) -> None:
        if packet_bytes not in _PACKET_SIZE_CODES:
            raise ValueError(f"a module's data packet size is 32, 64, 128 or 256 bytes, got {packet_bytes}")
        super().__init__()
        self.width, self.height = image_size
        self.address = address
        self.password = password
        self.packet_bytes = packet_bytes
        self.capacity = capacity
        self.baudrate = baudrate
        self.handshake_command = handshake_command
        self.answer_delay_s = 0.0
        self.templates: set[int] = set()  # pages of the template flash in use
        self.commands: list[int] = []  # instruction codes received, in order
        self._provider = provider
        self._presented: np.ndarray | None = None
        self._buffer: np.ndarray | None = None  # the image buffer GenImg fills and UpImage sends
        self._faults: list[tuple[Fault, int | None]] = []
        self._lock = threading.Lock()
        self._received = bytearray()

    # -- the desk's side ----------------------------------------------------------------------------

    def present(self, pixels: np.ndarray) -> None:
        """A finger is on the sensor: GenImg captures `pixels` (uint8, height x width of the module)."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.shape != (self.height, self.width):
            raise ValueError(
                f"the module captures uint8 {self.height} x {self.width} images, got {pixels.dtype} {pixels.shape}"
            )
        with self._lock:
            self._presented = pixels.copy()

    def lift(self) -> None:
        with self._lock:
            self._presented = None

    def inject(self, fault: Fault, count: int = 1, instruction: int | None = None) -> None:
        """Damage the next `count` answers with `fault` (only answers to `instruction` if given)."""
        with self._lock:
            self._faults.extend([(fault, instruction)] * count)

    @property
    def template_count(self) -> int:
        return len(self.templates)

    # -- the pseudo-terminal (ServedPtyTwin runs this) ---------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:
                continue
            try:
                self._received += os.read(self._master, 4096)
            except OSError:
                return
            while (packet := self._next_command()) is not None:
                self._answer(*packet)

    def _next_command(self) -> tuple[bool, bytes] | None:
        """(checksum good, payload) of the next whole command packet received, or None."""
        buf = self._received
        start = buf.find(_HEADER)
        if start < 0:
            del buf[: max(0, len(buf) - 1)]
            return None
        del buf[:start]
        if len(buf) < 9:
            return None
        length = int.from_bytes(buf[7:9], "big")
        if len(buf) < 9 + length:
            return None
        identifier, body = buf[6], bytes(buf[9 : 9 + length])
        address = int.from_bytes(buf[2:6], "big")
        del buf[: 9 + length]
        if address != self.address or identifier != 0x01:
            return self._next_command()  # not for this module: a real one stays silent
        payload = body[:-2]
        good = int.from_bytes(body[-2:], "big") == (identifier + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF
        return good, payload

    def _answer(self, checksum_good: bool, payload: bytes) -> None:
        if not checksum_good or not payload:
            self._send(None, [(0x07, bytes([_RECEIVE_ERROR]))])
            return
        instruction, params = payload[0], payload[1:]
        self.commands.append(instruction)
        self._send(instruction, self._handle(instruction, params))

    def _handle(self, instruction: int, params: bytes) -> list[tuple[int, bytes]]:
        def ack(code: int, result: bytes = b"") -> list[tuple[int, bytes]]:
            return [(0x07, bytes([code]) + result)]

        if instruction == 0x13:  # VfyPwd
            return ack(_OK if params == self.password.to_bytes(4, "big") else _WRONG_PASSWORD)
        if instruction == 0x40 and self.handshake_command:
            return ack(_OK)
        if instruction == 0x0F:  # ReadSysPara
            return ack(_OK, self._system_parameters())
        if instruction == 0x01:  # GenImg
            image = self._finger()
            if image is None:
                return ack(_NO_FINGER)
            self._buffer = image
            return ack(_OK)
        if instruction == 0x0A:  # UpImage
            if self._buffer is None:
                return ack(_UPLOAD_FAIL)
            return ack(_OK) + self._image_packets(self._buffer)
        if instruction == 0x1D:  # TemplateNum
            return ack(_OK, len(self.templates).to_bytes(2, "big"))
        if instruction == 0x0D:  # Empty
            self.templates.clear()
            return ack(_OK)
        if instruction == 0x06 and len(params) == 3:  # Store: buffer id, page (2)
            if self._buffer is None:
                return ack(_NO_IMAGE)
            page = int.from_bytes(params[1:3], "big")
            if page >= self.capacity:
                return ack(_BAD_LOCATION)
            self.templates.add(page)
            return ack(_OK)
        return ack(_RECEIVE_ERROR)  # an instruction this module does not have

    def _finger(self) -> np.ndarray | None:
        with self._lock:
            if self._presented is not None:
                return self._presented
        return self._provider() if self._provider is not None else None

    def _system_parameters(self) -> bytes:
        return b"".join((
            (0).to_bytes(2, "big"),  # status register: idle
            _SYSTEM_ID.to_bytes(2, "big"),
            self.capacity.to_bytes(2, "big"),
            _SECURITY_LEVEL.to_bytes(2, "big"),
            self.address.to_bytes(4, "big"),
            _PACKET_SIZE_CODES[self.packet_bytes].to_bytes(2, "big"),
            (self.baudrate // 9600).to_bytes(2, "big"),
        ))

    def _image_packets(self, pixels: np.ndarray) -> list[tuple[int, bytes]]:
        levels = (pixels >> 4).reshape(-1)
        packed = ((levels[0::2] << 4) | levels[1::2]).astype(np.uint8).tobytes()
        chunks = [packed[i : i + self.packet_bytes] for i in range(0, len(packed), self.packet_bytes)]
        return [(0x02, chunk) for chunk in chunks[:-1]] + [(0x08, chunks[-1])]

    def _send(self, instruction: int | None, packets: list[tuple[int, bytes]]) -> None:
        fault = None
        with self._lock:
            for i, (candidate, target) in enumerate(self._faults):
                if target is None or target == instruction:
                    fault = candidate
                    del self._faults[i]
                    break
        if self.answer_delay_s:
            time.sleep(self.answer_delay_s)
        if fault is Fault.NO_ANSWER:
            return
        if fault is Fault.RECEIVE_ERROR:
            packets = [(0x07, bytes([_RECEIVE_ERROR]))]
        frames = [encode(self.address, identifier, payload) for identifier, payload in packets]
        # A fault damages the answer's last packet: the ack of a plain command, the end of an image.
        last = bytearray(frames[-1])
        if fault is Fault.GARBAGE:
            frames[0] = b"\x00\xef\x55\x01" + frames[0]
        elif fault is Fault.GARBLED_BYTE:
            last[9] ^= 0x40
        elif fault is Fault.SHORT_FRAME:
            last = last[: len(last) // 2]
        elif fault is Fault.BAD_CHECKSUM:
            last[-1] ^= 0x01
        elif fault is Fault.WRONG_ADDRESS:
            last[2:6] = (self.address ^ 0x01).to_bytes(4, "big")
        if fault not in (None, Fault.GARBAGE, Fault.RECEIVE_ERROR):
            frames[-1] = bytes(last)
        os.write(self._master, b"".join(frames))


class SimulatedFingerprintSensor:
    """hal.fingerprint.FingerprintSensor in process, for the fast simulated day: the same answers as
    the module twin behind the real driver (4-bit images, a template flash that close() empties),
    without a pty or any waiting. capture() with no finger raises CaptureTimeout at once."""

    def __init__(
        self, image_size: tuple[int, int] = (256, 288), provider: ImageProvider | None = None, *,
        dpi: float = 500.0, capacity: int = 1000, model: str = "R307 (simulated)",
    ) -> None:
        self.width, self.height = image_size
        self.dpi = dpi
        self.capacity = capacity
        self.model = model
        self.templates: set[int] = set()
        self.captures = 0
        self._provider = provider
        self._presented: np.ndarray | None = None
        self._closed = False

    def present(self, pixels: np.ndarray) -> None:
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.shape != (self.height, self.width):
            raise ValueError(
                f"the sensor captures uint8 {self.height} x {self.width} images, got {pixels.dtype} {pixels.shape}"
            )
        self._presented = pixels.copy()

    def lift(self) -> None:
        self._presented = None

    def handshake(self) -> SensorInfo:
        return SensorInfo(self.model, self.width, self.height, self.dpi, self.capacity,
                          {"security_level": _SECURITY_LEVEL, "system_id": _SYSTEM_ID})

    def finger_present(self) -> bool:
        return self._finger() is not None

    def capture(self, timeout_s: float) -> FingerImage:
        image = self._finger()
        if image is None:
            raise CaptureTimeout(
                f"no finger on the fingerprint sensor within {timeout_s:g} s",
                "ask the voter to place the finger flat on the sensor, then capture again",
            )
        self.captures += 1
        return FingerImage(quantise_4bit(image), self.dpi)

    def template_count(self) -> int:
        return len(self.templates)

    def clear_templates(self) -> None:
        self.templates.clear()

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("fingerprint_sensor", True,
                            f"{self.model}, {len(self.templates)} of {self.capacity} templates stored")

    def close(self) -> None:
        self.templates.clear()
        self._closed = True

    def _finger(self) -> np.ndarray | None:
        if self._presented is not None:
            return self._presented
        return self._provider() if self._provider is not None else None
