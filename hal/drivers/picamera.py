"""The ballot camera: a Raspberry Pi CSI camera through picamera2, taking stills of the ballot held
at the imaging position under the feeder's LED light.

The exposure is fixed (settings.exposure_us, analogue gain 1.0, auto-exposure off): the light is
always the same, and an automatic exposure would brighten a nearly blank ballot and darken a
heavily marked one, moving the mark scores the OMR thresholds are calibrated on.

picamera2 comes from apt (python3-picamera2) and is imported only when the camera is opened.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from config.device import CameraSettings
from hal.camera import BallotImage, CaptureError
from hal.errors import DeviceStatus, HardwareUnavailable

# picamera2's "RGB888" is named after the little-endian word: in memory, and so in the numpy array,
# each pixel is [B, G, R]. It is the format every Pi model's ISP delivers; we reorder to R, G, B.
_FORMAT = "RGB888"

# A still at full resolution arrives within a few frame times (~0.1 s each at these sizes); a camera
# that has not delivered after 5 s has stalled (ribbon cable, ISP fault) and must be reported.
CAPTURE_TIMEOUT_S = 5.0


class PiBallotCamera:
    """hal.camera.BallotCamera on picamera2. The camera is opened, configured and started once, in
    the constructor, so a capture is only the wait for the next frame."""

    def __init__(self, settings: CameraSettings) -> None:
        self._settings = settings
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise HardwareUnavailable(
                f"picamera2 cannot be imported ({exc})",
                "install python3-picamera2 with apt and create the virtualenv with --system-site-packages; "
                "off a Pi run with device kind 'sim'",
            ) from exc
        try:
            camera = Picamera2()
        except Exception as exc:  # picamera2 raises IndexError/RuntimeError when no camera answers
            raise HardwareUnavailable(
                f"no ballot camera found ({type(exc).__name__}: {exc})",
                "check the camera ribbon cable at both ends and that the camera is enabled",
            ) from exc
        self._camera: Any = camera
        size = (settings.width, settings.height)
        try:
            config = camera.create_still_configuration(
                main={"size": size, "format": _FORMAT},
                controls={"AeEnable": False, "ExposureTime": settings.exposure_us, "AnalogueGain": 1.0},
            )
            camera.configure(config)
            delivered = tuple(camera.camera_configuration()["main"]["size"])
            if delivered != size:
                # libcamera adjusts sizes the pipeline cannot produce; the calibrated dpi would no
                # longer match the pixels, so refuse instead of scanning at a wrong scale.
                raise HardwareUnavailable(
                    f"the camera delivers {delivered[0]} x {delivered[1]} pixels instead of the configured "
                    f"{size[0]} x {size[1]}",
                    f"set camera.width and camera.height in the device settings to {delivered[0]} and "
                    f"{delivered[1]} and recalibrate camera.dpi with the test target",
                )
            camera.start()
        except HardwareUnavailable:
            camera.close()
            raise
        except Exception as exc:
            camera.close()
            raise HardwareUnavailable(
                f"the ballot camera cannot be configured for {size[0]} x {size[1]} stills: {exc}",
                "check camera.width/height/exposure_us in the device settings against the camera model",
            ) from exc

    def capture(self) -> BallotImage:
        camera = self._open_camera()
        try:
            job = camera.capture_array("main", wait=False)
            frame = camera.wait(job, timeout=CAPTURE_TIMEOUT_S)
        except TimeoutError as exc:
            raise CaptureError(
                f"the ballot camera delivered no frame within {CAPTURE_TIMEOUT_S:g} s",
                "return the ballot to the voter; if it happens again, restart the box and check the camera cable",
            ) from exc
        except Exception as exc:
            raise CaptureError(
                f"the ballot camera failed to capture ({type(exc).__name__}: {exc})",
                "return the ballot to the voter; if it happens again, restart the box",
            ) from exc
        expected = (self._settings.height, self._settings.width, 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise CaptureError(
                f"the ballot camera returned a {frame.dtype} {frame.shape} frame, expected uint8 {expected}",
                "restart the box; if it persists, the camera configuration is wrong",
            )
        pixels = np.ascontiguousarray(frame[:, :, ::-1])  # [B, G, R] -> [R, G, B]
        return BallotImage(pixels, dpi=self._settings.dpi, white_level=self._settings.white_level)

    def self_test(self) -> DeviceStatus:
        try:
            image = self.capture()
        except CaptureError as exc:
            return DeviceStatus("camera", False, exc.message)
        height, width = image.pixels.shape[:2]
        return DeviceStatus("camera", True, f"{width} x {height} still at {image.dpi:g} dpi")

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()

    def _open_camera(self) -> Any:
        if self._camera is None:
            raise CaptureError("the ballot camera was closed", "restart the ballotbox service")
        return self._camera
