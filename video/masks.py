"""Privacy masks: polygons over the booths and the box's slot, burnt into every plane of every frame.

    mask = PrivacyMask.from_settings(masks, width=1280, height=720)   # MaskError if unusable
    mask.apply(frame)                                                  # in place, before the frame leaves

A masked luma pixel becomes black (Y = 16, video range) and every chroma sample that any masked luma
pixel shares becomes neutral (U = V = 128): nothing of what was under the polygon survives in any plane.
The polygons and their SHA-256 go into the manifest so anyone can decode a recording and check the
masked pixels themselves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from hal.room_camera import RoomFrame

BLACK_Y, NEUTRAL_C = 16, 128  # video-range black: what a decoder turns into RGB (0, 0, 0)
MIN_AREA_PX = 16  # a polygon smaller than a 4 x 4 block hides nothing: it is a mistake in the settings
# What is burnt is wider than the polygons: each polygon grown by BURN_MARGIN_PX, then out to whole 16 x 16
# macroblocks. H.264 then codes the polygons inside flat macroblocks, out of reach of the deblocking filter
# (it moves at most 3 pixels either side of a block edge), so they decode blank, not just dark.
MACROBLOCK_PX = 16
BURN_MARGIN_PX = 4


class MaskError(ValueError):
    """A mask that cannot be applied. The recorder stops rather than record unmasked; the message names
    the mask, the value and what to fix."""


@dataclass(frozen=True)
class MaskPolygon:
    name: str
    points: tuple[tuple[int, int], ...]


class PrivacyMask:
    """The union of the polygons as keep-maps (1 = keep, 0 = blank) for the Y plane and the chroma planes,
    cut to the bounding box of each polygon so that masking costs only the masked area."""

    def __init__(self, polygons: Sequence[MaskPolygon], width: int, height: int) -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise MaskError(f"video.width x video.height = {width} x {height}: give even sizes of at least 16")
        self.polygons = tuple(polygons)
        self.width, self.height = width, height
        blank = np.zeros((height, width), np.uint8)
        for polygon in self.polygons:
            _check_polygon(polygon, width, height)
            cv2.fillPoly(blank, [np.array(polygon.points, np.int32)], 1)
        # a chroma sample covers a 2 x 2 block of luma: blank it if any of the four is masked
        self.luma_blank = blank.astype(bool)  # the polygons: what must decode blank
        self.chroma_blank = _chroma(blank).astype(bool)
        burn = _burn_area(blank)
        self.luma_burn = burn.astype(bool)  # what is burnt: the polygons widened to whole macroblocks
        self._luma_boxes = _boxes(burn)
        self._chroma_boxes = _boxes(_chroma(burn))

    @classmethod
    def from_settings(cls, masks: Sequence[Any], width: int, height: int) -> PrivacyMask:
        """`video.masks` of the device settings: [{"name", "polygon": [[x, y], ...]}, ...] in frame pixels."""
        polygons = []
        for i, entry in enumerate(masks):
            data = entry.model_dump() if hasattr(entry, "model_dump") else entry
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str) or not name:
                raise MaskError(f"video.masks[{i}]: {data!r}: each mask needs a \"name\" and a \"polygon\"")
            raw = data.get("polygon")
            try:
                points = tuple((int(p[0]), int(p[1])) for p in raw) if isinstance(raw, (list, tuple)) else ()
                if any(len(p) != 2 or any(not isinstance(c, (int, float)) for c in p) for p in raw):
                    points = ()
            except (TypeError, ValueError, IndexError):
                points = ()
            if not points:
                raise MaskError(f"video.masks[{i}] '{name}': polygon {raw!r}: give a list of [x, y] points in "
                                "frame pixels")
            polygons.append(MaskPolygon(name, points))
        return cls(polygons, width, height)

    @property
    def masked_pixels(self) -> int:
        return int(self.luma_blank.sum())

    def sha256(self) -> str:
        return polygons_sha256(self.polygons, self.width, self.height)

    @property
    def burnt_pixels(self) -> int:
        return int(self.luma_burn.sum())

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": p.name, "polygon": [list(pt) for pt in p.points]} for p in self.polygons]

    def apply(self, frame: RoomFrame) -> None:
        """Burn the mask into the frame, in place. A frame of another size is refused (MaskError): a
        mask drawn for one size would leave the booths visible in another."""
        if (frame.width, frame.height) != (self.width, self.height):
            raise MaskError(f"the camera gives {frame.width} x {frame.height} frames, the masks are drawn for "
                            f"video.width x video.height = {self.width} x {self.height}: set the camera to that "
                            "size or redraw the masks; recording stopped rather than record unmasked")
        self.apply_planes(frame.y, frame.u, frame.v)

    def apply_planes(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Burn the mask into the three planes of an I420 buffer (picamera2's pre_callback on a Pi 4, where
        the frame goes from the camera to the hardware encoder without coming up to Python)."""
        chroma = (self.height // 2, self.width // 2)
        if y.shape != (self.height, self.width) or u.shape != chroma or v.shape != chroma:
            raise MaskError(f"planes {y.shape} / {u.shape} / {v.shape} are not the {self.width} x {self.height} "
                            "frame the masks are drawn for; recording stopped rather than record unmasked")
        for (y0, y1, x0, x1), sub in self._luma_boxes:
            y[y0:y1, x0:x1][sub] = BLACK_Y
        for (y0, y1, x0, x1), sub in self._chroma_boxes:
            u[y0:y1, x0:x1][sub] = NEUTRAL_C
            v[y0:y1, x0:x1][sub] = NEUTRAL_C


def polygons_sha256(polygons: Sequence[MaskPolygon], width: int, height: int) -> str:
    """SHA-256 of the masks as canonical JSON (sorted keys, no spaces), with the frame size they are in."""
    body = {"width": width, "height": height,
            "masks": [{"name": p.name, "polygon": [list(pt) for pt in p.points]} for p in polygons]}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_polygon(polygon: MaskPolygon, width: int, height: int) -> None:
    name, points = polygon.name, polygon.points
    if len(points) < 3:
        raise MaskError(f"video.masks '{name}': {len(points)} point(s): a polygon needs at least 3")
    for x, y in points:
        if not (0 <= x <= width and 0 <= y <= height):
            raise MaskError(f"video.masks '{name}': point [{x}, {y}] is outside the {width} x {height} frame: "
                            "masks are in pixels of the configured frame size")
    area = abs(cv2.contourArea(np.array(points, np.float32)))
    if area < MIN_AREA_PX:
        raise MaskError(f"video.masks '{name}': area {area:g} px² (points {list(points)}): the polygon is "
                        "degenerate; draw it over the booth or the slot")


def _chroma(luma: np.ndarray) -> np.ndarray:
    h, w = luma.shape
    return luma.reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))


def _burn_area(blank: np.ndarray) -> np.ndarray:
    grown = cv2.dilate(blank, np.ones((2 * BURN_MARGIN_PX + 1, 2 * BURN_MARGIN_PX + 1), np.uint8))
    h, w = blank.shape
    mb = MACROBLOCK_PX
    ph, pw = -(-h // mb) * mb, -(-w // mb) * mb
    padded = np.zeros((ph, pw), np.uint8)
    padded[:h, :w] = grown
    blocks = padded.reshape(ph // mb, mb, pw // mb, mb).max(axis=(1, 3))
    return np.kron(blocks, np.ones((mb, mb), np.uint8))[:h, :w]


def _boxes(blank: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Bounding boxes of the connected masked areas, each with its boolean sub-mask."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(blank, connectivity=8)
    out = []
    for i in range(1, count):
        x, y, w, h = (int(s) for s in stats[i][:4])
        sub = blank[y:y + h, x:x + w].astype(bool)
        out.append(((y, y + h, x, x + w), sub))
    return out
