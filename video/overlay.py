"""Timestamp and station overlay: the station code, the device and the station time, burnt into the
top-left corner of every frame after the privacy mask, never over a masked pixel."""

from __future__ import annotations

from datetime import datetime

import cv2
import numpy as np

from hal.room_camera import RoomFrame
from video.masks import BLACK_Y, PrivacyMask

TEXT_Y, OUTLINE_Y = 235, BLACK_Y  # video-range white text with a black outline: readable on any scene
MARGIN_PX = 6


class StationOverlay:
    """Draws `"{station} {device} {YYYY-MM-DD HH:MM:SS}"`; the text bitmap is made once per second."""

    def __init__(self, station: str, device_id: str, mask: PrivacyMask) -> None:
        self.label = f"{station} {device_id}"
        self.mask = mask
        self.scale = max(0.35, mask.height / 1440)  # 0.5 at 720 lines: ~14 px letters
        self.thickness = 1 if mask.height < 900 else 2
        self._second = ""
        self._bitmaps: tuple[np.ndarray, np.ndarray] | None = None

    def apply(self, frame: RoomFrame, at: datetime) -> None:
        self.apply_luma(frame.y, at)

    def apply_luma(self, y: np.ndarray, at: datetime) -> None:
        """On the Y plane alone (the Pi 4's mapped buffer: video.recorder.Recorder.burn_planes)."""
        second = at.strftime("%Y-%m-%d %H:%M:%S")
        if second != self._second or self._bitmaps is None:
            self._second, self._bitmaps = second, self._render(f"{self.label} {second}")
        outline, text = self._bitmaps
        h, w = text.shape
        band = y[MARGIN_PX:MARGIN_PX + h, MARGIN_PX:MARGIN_PX + w]
        keep = ~self.mask.luma_burn[MARGIN_PX:MARGIN_PX + h, MARGIN_PX:MARGIN_PX + w]
        band[outline & keep] = OUTLINE_Y
        band[text & keep] = TEXT_Y

    def _render(self, words: str) -> tuple[np.ndarray, np.ndarray]:
        font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), base = cv2.getTextSize(words, font, self.scale, self.thickness)
        w = min(tw + 4, self.mask.width - 2 * MARGIN_PX)
        h = min(th + base + 4, self.mask.height - 2 * MARGIN_PX)
        canvas = np.zeros((h, w), np.uint8)
        origin = (2, th + 2)
        cv2.putText(canvas, words, origin, font, self.scale, 1, self.thickness + 2, cv2.LINE_8)
        outline = canvas.astype(bool)
        canvas[:] = 0
        cv2.putText(canvas, words, origin, font, self.scale, 1, self.thickness, cv2.LINE_8)
        return outline, canvas.astype(bool)
