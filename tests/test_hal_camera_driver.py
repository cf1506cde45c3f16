"""PiBallotCamera against a stand-in `picamera2` module injected into sys.modules (the real one
needs a Pi and its camera). The stand-in behaves as picamera2 does where the driver depends on it:
"RGB888" arrays are [B, G, R] per pixel, capture_array(wait=False) returns a job for wait().

Last, hal.devices.build_pi_devices is run with every hardware library simulated at once."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from config.device import CameraSettings, DeviceSettings, PrinterSettings
from hal.camera import BallotCamera, CaptureError
from hal.devices import build_pi_devices
from hal.drivers.escpos_printer import EscPosPrinter
from hal.drivers.gpio_feeder import GpioFeeder
from hal.drivers.gpio_panel import GpioButtonPanel
from hal.drivers.gpio_switches import GpioSwitches
from hal.drivers.picamera import CAPTURE_TIMEOUT_S, PiBallotCamera
from hal.errors import HardwareUnavailable
from hal.switches import SealState
from simulator.escpos_twin import EscPosPrinterTwin
from simulator.gpio_twin import (
    ButtonPanelTwin,
    GpioTwin,
    PaperPathTwin,
    SwitchBoardTwin,
)

SETTINGS = CameraSettings(width=640, height=480, dpi=150.0, exposure_us=4000)


class FakePicamera2:
    """Records what the driver asks; delivers BGR frames whose channels are 10, 20, 30 (R, G, B)."""

    instances: ClassVar[list[FakePicamera2]] = []
    deliver_size: ClassVar[tuple[int, int] | None] = None  # None: the size asked for
    stall: ClassVar[bool] = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.config: dict[str, Any] = {}
        FakePicamera2.instances.append(self)

    def create_still_configuration(self, main: dict[str, Any], controls: dict[str, Any]) -> dict[str, Any]:
        return {"main": dict(main), "controls": dict(controls)}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append(("configure", config))
        self.config = config
        if FakePicamera2.deliver_size is not None:
            self.config = {**config, "main": {**config["main"], "size": FakePicamera2.deliver_size}}

    def camera_configuration(self) -> dict[str, Any]:
        return self.config

    def start(self) -> None:
        self.calls.append(("start", None))

    def capture_array(self, name: str, wait: bool) -> str:
        self.calls.append(("capture_array", (name, wait)))
        return "job"

    def wait(self, job: str, timeout: float) -> np.ndarray:
        self.calls.append(("wait", timeout))
        if FakePicamera2.stall:
            raise TimeoutError
        width, height = self.config["main"]["size"]
        frame = np.empty((height, width, 3), dtype=np.uint8)
        frame[:, :] = (30, 20, 10)  # B, G, R
        return frame

    def stop(self) -> None:
        self.calls.append(("stop", None))

    def close(self) -> None:
        self.calls.append(("close", None))


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePicamera2]]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    FakePicamera2.deliver_size = None
    FakePicamera2.stall = False
    yield FakePicamera2


def test_capture_returns_rgb_at_the_calibrated_dpi(fake_picamera2: type[FakePicamera2]) -> None:
    camera = PiBallotCamera(SETTINGS)
    assert isinstance(camera, BallotCamera)
    image = camera.capture()
    assert image.pixels.shape == (480, 640, 3)
    assert image.pixels.dtype == np.uint8
    assert image.pixels[0, 0].tolist() == [10, 20, 30]  # R, G, B
    assert image.pixels.flags["C_CONTIGUOUS"]
    assert image.dpi == 150.0


def test_the_still_is_configured_with_a_fixed_exposure(fake_picamera2: type[FakePicamera2]) -> None:
    PiBallotCamera(SETTINGS)
    (instance,) = fake_picamera2.instances
    assert instance.calls[0] == (
        "configure",
        {
            "main": {"size": (640, 480), "format": "RGB888"},
            "controls": {"AeEnable": False, "ExposureTime": 4000, "AnalogueGain": 1.0},
        },
    )
    assert instance.calls[1] == ("start", None)


def test_capture_waits_with_a_timeout(fake_picamera2: type[FakePicamera2]) -> None:
    camera = PiBallotCamera(SETTINGS)
    camera.capture()
    (instance,) = fake_picamera2.instances
    assert instance.calls[2:] == [("capture_array", ("main", False)), ("wait", CAPTURE_TIMEOUT_S)]


def test_a_stalled_camera_is_a_capture_error(fake_picamera2: type[FakePicamera2]) -> None:
    camera = PiBallotCamera(SETTINGS)
    fake_picamera2.stall = True
    with pytest.raises(CaptureError) as caught:
        camera.capture()
    assert caught.value.message == "the ballot camera delivered no frame within 5 s"
    status = camera.self_test()
    assert (status.device, status.ok) == ("camera", False)


def test_a_size_the_camera_cannot_deliver_is_refused(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.deliver_size = (608, 480)
    with pytest.raises(HardwareUnavailable) as caught:
        PiBallotCamera(SETTINGS)
    assert caught.value.message == "the camera delivers 608 x 480 pixels instead of the configured 640 x 480"
    assert "recalibrate camera.dpi" in caught.value.remedy
    assert fake_picamera2.instances[0].calls[-1] == ("close", None)


def test_close_stops_and_releases_the_camera(fake_picamera2: type[FakePicamera2]) -> None:
    camera = PiBallotCamera(SETTINGS)
    camera.close()
    camera.close()
    assert fake_picamera2.instances[0].calls[-2:] == [("stop", None), ("close", None)]
    with pytest.raises(CaptureError, match="closed"):
        camera.capture()


def test_without_picamera2_the_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(HardwareUnavailable) as caught:
        PiBallotCamera(SETTINGS)
    assert "python3-picamera2" in caught.value.remedy


def test_build_pi_devices_assembles_every_real_driver(
    fake_picamera2: type[FakePicamera2], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory's constructor calls match the drivers: with RPi.GPIO, the serial port and
    picamera2 all simulated, the whole Pi device set comes up. (It runs on the system clock, so only
    the quick self-tests are run here.)"""
    monkeypatch.setenv("RPI_LGPIO_CHIP", "4")  # restored after the test; the device setting wins
    gpio = GpioTwin()
    settings = DeviceSettings(kind="pi", gpio_chip=0, camera=SETTINGS)
    PaperPathTwin(gpio, settings.feeder)
    SwitchBoardTwin(gpio, settings.switches)
    ButtonPanelTwin(gpio, settings.panel)
    with EscPosPrinterTwin() as printer, gpio.installed():
        devices = build_pi_devices(settings.model_copy(update={"printer": PrinterSettings(port=printer.port)}))
        try:
            assert isinstance(devices.feeder, GpioFeeder)
            assert isinstance(devices.switches, GpioSwitches)
            assert isinstance(devices.panel, GpioButtonPanel)
            assert isinstance(devices.printer, EscPosPrinter)
            assert isinstance(devices.camera, PiBallotCamera)
            assert devices.switches.read() == SealState(seal_intact=True, lid_closed=True)
            statuses = [device.self_test() for device in (devices.feeder, devices.printer, devices.camera)]
        finally:
            devices.close()
    assert [(s.device, s.ok) for s in statuses] == [("feeder", True), ("printer", True), ("camera", True)]
    assert gpio.chip_opened == 0
