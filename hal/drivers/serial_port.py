"""Opening a serial port for a driver: pyserial imported here, lazily, and every way opening can fail
turned into HardwareUnavailable naming the device, its port and what to do. The printer, the fingerprint
sensor and the document reader open theirs through this one function."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hal.errors import HardwareUnavailable

if TYPE_CHECKING:
    import serial


def open_serial(port: str, *, baudrate: int, timeout: float, write_timeout: float | None = None,
                device: str, remedy: str) -> tuple[serial.Serial, tuple[type[Exception], ...]]:
    """The open port (8 data bits, no parity, one stop bit) and the exceptions its reads and writes raise
    (pyserial's and the OS's), for the driver to catch without importing pyserial at module level.
    `device` names the device in the message ("printer"); `remedy` says what to check."""
    try:
        import serial
    except ImportError as exc:
        raise HardwareUnavailable(
            f"pyserial is not installed ({exc})", "install the ballotbox package with its dependencies"
        ) from exc
    errors: tuple[type[Exception], ...] = (serial.SerialException, OSError)
    try:
        opened = serial.Serial(port, baudrate=baudrate, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                               stopbits=serial.STOPBITS_ONE, timeout=timeout, write_timeout=write_timeout)
    except errors as exc:
        raise HardwareUnavailable(f"cannot open the {device} port {port}: {exc}", remedy) from exc
    return opened, errors
