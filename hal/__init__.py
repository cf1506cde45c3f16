"""Hardware abstraction: one typed interface per device kind, and the real drivers behind lazy imports.

Nothing in this package imports a hardware library at module level; `hal.drivers.*` import theirs
inside the driver constructor, so a laptop or CI never needs picamera2, RPi.GPIO or a serial port.
"""

from hal.errors import DeviceStatus, HalError

__all__ = ["DeviceStatus", "HalError"]
