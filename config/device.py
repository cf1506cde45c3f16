"""Device settings: how this box is wired. Data, validated on load; errors name the field.

The GPIO numbers are BCM numbers on the 40-pin header. The gpiochip is never hard-coded: on a Pi 5 the
RPi.GPIO API comes from rpi-lgpio, which finds the header's chip itself; `gpio_chip` only overrides that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_DEVICE = Path(__file__).parent / "device-sim.json"

Pin = Annotated[int, Field(ge=2, le=27)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeederPins(_Strict):
    motor_forward: Pin = 17  # H-bridge IN1
    motor_reverse: Pin = 27  # H-bridge IN2
    motor_enable: Pin = 22  # H-bridge EN (PWM-capable not required: full speed)
    sensor_entry: Pin = 5
    sensor_imaging: Pin = 6
    sensor_exit: Pin = 13
    sensor_double_sheet: Pin = 19
    sensor_box_full: Pin = 26
    sensor_cover: Pin = 21  # closed = low
    sensors_active_low: bool = True  # IR reflective sensors pull low when paper is present
    debounce_ms: Annotated[int, Field(ge=1, le=200)] = 15
    take_in_timeout_s: Annotated[float, Field(gt=0, le=10)] = 2.5
    drop_timeout_s: Annotated[float, Field(gt=0, le=10)] = 2.5
    return_timeout_s: Annotated[float, Field(gt=0, le=10)] = 2.5


class SwitchPins(_Strict):
    seal: Pin = 23  # seal loop intact = low
    lid: Pin = 24  # lid closed = low
    led_ready: Pin = 16
    led_busy: Pin = 20
    led_attention: Pin = 12
    buzzer: Pin = 25
    debounce_ms: Annotated[int, Field(ge=1, le=200)] = 30


class PanelPins(_Strict):
    """Display + two buttons variant of the voter panel (the touchscreen variant is an HDMI app)."""

    button_cast: Pin = 7
    button_return: Pin = 8
    led_valid: Pin = 9  # green lamp beside "VAŽEĆI"
    led_invalid: Pin = 10  # red lamp beside "NEVAŽEĆI"
    led_ambiguous: Pin = 11  # amber lamp beside "PROVJERITE LISTIĆ" (ambiguous / foreign / unreadable)
    debounce_ms: Annotated[int, Field(ge=1, le=200)] = 30


class PrinterSettings(_Strict):
    port: str = "/dev/serial0"
    baudrate: Annotated[int, Field(ge=1200, le=921600)] = 115200
    width_px: Literal[384, 576] = 576  # 80 mm paper at 203 dpi; 384 for 58 mm
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 5.0


class CameraSettings(_Strict):
    dpi: Annotated[float, Field(ge=72, le=600)] = 200.0  # calibrated at provisioning with the test target
    width: Annotated[int, Field(ge=320, le=9152)] = 2339
    height: Annotated[int, Field(ge=240, le=6944)] = 1654
    exposure_us: Annotated[int, Field(ge=50, le=100000)] = 4000
    # grey level of a genuine ballot's paper under the feeder's LEDs at this exposure, measured with the
    # calibration sheet at provisioning: paper much darker than this is not ballot paper (Art. 21(10))
    white_level: Annotated[float, Field(ge=60, le=255)] = 250.0


class FingerprintSensorSettings(_Strict):
    """The fingerprint module on a UART (R30x / AS608 / ZFM family, 0xEF01 packet protocol)."""

    port: str = "/dev/ttyUSB0"  # a USB-UART adapter: /dev/serial0 is the printer's
    baudrate: Annotated[int, Field(ge=9600, le=115200, multiple_of=9600)] = 57600  # module default N=6
    address: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 0xFFFFFFFF  # factory default module address
    password: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 0  # factory default (VfyPwd)
    use_handshake_command: bool = False  # R50x modules also answer Handshake (0x40); R307/AS608 do not
    model: str = "R307"
    image_width: Annotated[int, Field(ge=8, le=1024)] = 256  # R307-class sensor: 256 x 288 at 500 dpi
    image_height: Annotated[int, Field(ge=8, le=1024)] = 288
    dpi: Annotated[float, Field(ge=250, le=1000)] = 500.0
    read_timeout_s: Annotated[float, Field(gt=0, le=10)] = 0.5  # per serial read
    busy_wait_s: Annotated[float, Field(gt=0, le=30)] = 2.0  # GenImg takes up to ~1 s on these modules
    poll_interval_s: Annotated[float, Field(ge=0, le=1)] = 0.05  # between GenImg tries while no finger
    retries: Annotated[int, Field(ge=0, le=5)] = 2  # resends after a packet receive error or a bad frame
    clear_on_close: bool = True  # the module's template flash must be empty after close (issue 9, item 6)


class DocumentReaderSettings(_Strict):
    """The 2D document reader (MRZ / barcode) on a serial or USB-CDC port (hal.drivers.document_reader_serial)."""

    port: str = "/dev/ttyACM0"
    baudrate: Annotated[int, Field(ge=1200, le=921600)] = 9600  # USB-CDC ignores it; RS-232 readers: 9600 8N1
    # The suffix the reader is configured to send after a scan: "crlf", "cr", "lf", "etx", or "none" (frames
    # end by silence only).
    suffix: Literal["crlf", "cr", "lf", "etx", "none"] = "crlf"
    inter_char_timeout_s: Annotated[float, Field(gt=0, le=2)] = 0.08


class SelfTestSettings(_Strict):
    """The day's checks beside the devices (firmware.common.selftest): the CEC receiver (reachability
    reported). The storage for the day's video is checked with the recorder's own settings (`video`)."""

    endpoint: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_video_copy(cls, data: object) -> object:
        moved = sorted({"video_dir", "video_bitrate_kbps"} & set(data)) if isinstance(data, dict) else []
        if moved:
            raise ValueError(f"{', '.join(moved)} are no longer read: the self-test checks the video storage "
                             "with the recorder's own settings (video.directory under data_dir, "
                             "video.bitrate_kbps, video.hours); delete them from self_test")
        return data


class VideoMask(_Strict):
    """A privacy mask over a booth or the box's slot: a polygon in pixels of the configured frame size.
    Its geometry is checked by video.masks.PrivacyMask, which refuses to record with a mask it cannot apply."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    polygon: list[tuple[int, int]]


class VideoSettings(_Strict):
    """The room camera's recording (CEC pilot 4). Sizes for a Pi 4 (hardware H.264) and a Pi 5 (software
    H.264 on the CPU) are in README "Video"; 1280 x 720 at 15 fps is what both sustain."""

    enabled: bool = True
    source: Literal["picamera2", "opencv", "synthetic"] = "synthetic"
    device: str = "/dev/video0"  # the USB camera's node (source "opencv")
    camera_num: Annotated[int, Field(ge=0, le=1)] = 1  # source "picamera2": CSI port (0 is the ballot camera's)
    width: Annotated[int, Field(ge=16, le=1920, multiple_of=2)] = 1280
    height: Annotated[int, Field(ge=16, le=1080, multiple_of=2)] = 720
    fps: Annotated[float, Field(gt=0, le=30)] = 15.0
    # a power cut loses at most the open segment: the bar is 10 s
    segment_s: Annotated[float, Field(gt=0, le=10)] = 10.0
    # 1.2 Mbit/s peak = 0.57 GB per hour with the TS overhead: under the 0.7 GB/hour bar with room for the
    # encoder's overshoot of its VBV (measured 0.60 GB/hour on a scene drowned in noise, README "Video")
    bitrate_kbps: Annotated[int, Field(ge=100, le=8000)] = 1200
    crf: Annotated[int, Field(ge=0, le=51)] = 28  # quality when the scene is quiet (below the peak rate)
    encoder: Literal["auto", "libx264", "hardware"] = "auto"  # hardware: the Pi 4's V4L2 H.264 through picamera2
    station_overlay: bool = True
    masks: list[VideoMask] = []
    directory: str = "video"  # under data_dir: the segments, manifest.json and its signature
    hours: Annotated[float, Field(gt=0, le=48)] = 14.0  # the day the storage guard checks for: 06:00-20:00


class DeviceSettings(_Strict):
    kind: Literal["pi", "sim"] = "sim"
    device_id: Annotated[str, Field(pattern=r"^[A-Z0-9-]{4,32}$")] = "BB-SIM-0001"
    gpio_chip: int | None = None
    feeder: FeederPins = FeederPins()
    switches: SwitchPins = SwitchPins()
    panel: PanelPins = PanelPins()
    printer: PrinterSettings = PrinterSettings()
    camera: CameraSettings = CameraSettings()
    # The authentication desk's devices (pilots 1 and 3): the auth service's, not the scanner's.
    fingerprint: FingerprintSensorSettings = FingerprintSensorSettings()
    document_reader: DocumentReaderSettings = DocumentReaderSettings()
    video: VideoSettings = VideoSettings()  # the video service's (pilot 4)
    data_dir: str = "/var/lib/ballotbox"
    self_test: SelfTestSettings = SelfTestSettings()

    @model_validator(mode="after")
    def _pins_unique(self) -> DeviceSettings:
        owner: dict[int, str] = {}
        for group in ("feeder", "switches", "panel"):
            for name, value in getattr(self, group).model_dump().items():
                if isinstance(value, bool) or not isinstance(value, int) or name.endswith(("_ms", "_s")):
                    continue
                if value in owner:
                    raise ValueError(f"GPIO {value} is wired to both {owner[value]} and {group}.{name}; "
                                     "each BCM pin can serve one signal")
                owner[value] = f"{group}.{name}"
        return self


class DeviceSettingsError(ValueError):
    """Device settings that cannot be used; the message names the file, field and value."""


def load_device_settings(path: str | Path = DEFAULT_DEVICE) -> DeviceSettings:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceSettingsError(f"{path}: no such device settings file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeviceSettingsError(f"{path}: cannot be read as JSON ({exc}); restore it from the provisioning medium") from None
    try:
        return DeviceSettings.model_validate(data)
    except ValidationError as exc:
        errs = [f"{path.name}: {'.'.join(map(str, e['loc']))}: {e.get('input')!r}: {e['msg']}" for e in exc.errors()]
        raise DeviceSettingsError("\n".join(errs)) from None
