"""A learned second opinion for boxes whose classical fill score is marginal: mark or not a mark.

The classical score (the fraction of a box's inner area that is ink) stays primary. Only a box that
falls in the marginal band [marginal, definite) is shown to this model, and only a very confident
answer may settle it; anything in between stays *ambiguous* and goes to the voter or the committee,
exactly as without the model. The engine keeps every guarantee when no runtime is installed:
`MarkClassifier.load()` is then None and the caller behaves as before.

Two pieces, used the same way by training (scripts/train_mark_classifier.py) and at run time:
  crop_box       pure: ink image + where the box is -> a normalised S x S uint8 crop of the box
  MarkClassifier the small network in omr/models/mark_classifier.tflite, run by tflite-runtime or, where
                 that is missing or cannot run it, by ai-edge-litert (the same interpreter under its new
                 name). tflite-runtime's last release (2.14) is built for NumPy 1: under NumPy 2 it
                 imports, prints NumPy's warning once and fails to load; ai-edge-litert then runs it.

Disk access: the model file is read once, by `MarkClassifier.load()` (cached per path, checked against
MODEL_SHA256 so that only the certified model ever runs). Call it when the scanner starts, not inside
`interpret`: after that, `classify` is arithmetic on arrays - no clock, no disk, no device - and
interpretation stays pure. The tflite interpreter object is not thread-safe: one classifier per thread.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

MODEL_PATH = Path(__file__).resolve().parent / "models" / "mark_classifier.tflite"
# The certified model: a file with another hash is refused (available() is False), so that swapping the
# model cannot change how ballots are read without changing the software hash printed on the zero report.
# scripts/train_mark_classifier.py prints this value; omr/models/README.md records it.
MODEL_SHA256 = "0f50c44e8c158f07eb5702cbc4a59bf8857c97d0ce75e253cdccaf2be4254267"

# The integration thresholds that belong to this model (they change with it; omr/models/README.md has
# the figures). A marginal box is settled only when the model is at least this sure: p >= MARK_AT reads
# as a mark, p <= EMPTY_AT as empty, anything between stays marginal (ambiguous, box named). Each is the
# worst case over the 6,613 marginal-band crops of validation and test with a margin (halfway to 0 or 1):
# at them no true mark there was read empty and no non-mark read as a mark, nor on the corpus check.
MARK_AT = 0.999983
EMPTY_AT = 1.7e-05

# Crop side in pixels. 32 px over a 6 mm window (a 5 mm box) is ~5.3 px/mm: a 0.3 mm ballpoint line is
# still 1.6 px wide, and a 32 x 32 input keeps the network small (~20 k weights) and a batch fast.
CROP_PX = 32
# The crop shows the whole box, outline included, plus this much paper around it on every side. The
# printed outline is then always fully inside the crop, wherever registration puts it to within
# +-0.5 mm, so the network sees it as a constant frame (not as ink that comes and goes at the edge),
# and strokes of a small mark that reach past the scored inner area are visible. Neighbouring boxes
# are >= 1 mm away (row_mm - box_mm >= 1, config.election), so they never enter the crop.
CROP_MARGIN_MM = 0.5
# The paper level of a crop is the brightest value of the crop smoothed over 3 x 3 pixels (one noisy
# pixel cannot set it); it is floored so that an all-dark crop (a blacked-out box) is not stretched
# into paper.
PAPER_FLOOR = 64


def crop_box(ink_image: np.ndarray, centre_xy: tuple[float, float], px_per_mm: float, box_mm: float,
             size: int = CROP_PX) -> np.ndarray:
    """The box centred at `centre_xy` (image px) as a size x size uint8 crop, paper at 255.

    `ink_image` is the interpreter's ink image (H x W uint8: the darkest colour channel, so every pen
    reads as dark), `px_per_mm` the registered scale and `box_mm` the style's box side. The window is
    box_mm + 2 * CROP_MARGIN_MM wide, resampled by area averaging, then divided by the crop's paper
    level so that the same mark reads the same under bright or dim light and on tinted paper. Pure and
    deterministic: the same arguments give the same bytes. Parts of the window outside the image are
    filled by repeating the image's edge.
    """
    if ink_image.ndim != 2 or ink_image.dtype != np.uint8:
        raise ValueError(f"crop_box: ink_image must be H x W uint8, got {ink_image.shape} {ink_image.dtype}")
    if not px_per_mm > 0 or not box_mm > 0 or size < 8:
        raise ValueError(f"crop_box: px_per_mm {px_per_mm}, box_mm {box_mm} and size {size} must be positive (size >= 8)")
    side = max(2, round((box_mm + 2 * CROP_MARGIN_MM) * px_per_mm))
    cx, cy = centre_xy
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    window = _window(ink_image, x0, y0, side)
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    crop = cv2.resize(window, (size, size), interpolation=interp)
    paper = max(PAPER_FLOOR, int(cv2.blur(crop, (3, 3)).max()))
    scaled = crop.astype(np.float32) * np.float32(255.0 / paper)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _window(img: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    h, w = img.shape
    if x0 >= 0 and y0 >= 0 and x0 + side <= w and y0 + side <= h:
        return img[y0:y0 + side, x0:x0 + side]
    ys = np.clip(np.arange(y0, y0 + side), 0, h - 1)
    xs = np.clip(np.arange(x0, x0 + side), 0, w - 1)
    return img[np.ix_(ys, xs)]


class MarkClassifier:
    """The mark / not-a-mark network. Get one with `MarkClassifier.load()`; None means no second opinion.

    `classify(crops)` takes N crops from `crop_box` (N x S x S uint8) and returns N probabilities that
    the box holds a deliberate mark, as float64. Batched: one interpreter call for all N.
    """

    def __init__(self, interpreter: Any, size: int, runtime: str) -> None:
        self._interpreter = interpreter
        self.size = size
        self.runtime = runtime  # which package runs it: "tflite-runtime" or "ai-edge-litert"
        self._batch = 0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_path: str | Path = MODEL_PATH, sha256: str | None = MODEL_SHA256) -> MarkClassifier | None:
        """The classifier for `model_path`, or None when no runtime is installed or the file is missing,
        altered (its sha256 is not `sha256`; None skips that check, for training experiments only) or
        not the expected network. Reads the file once per (path, sha256): cached."""
        result = _load(str(model_path), sha256)
        return result if isinstance(result, MarkClassifier) else None

    @classmethod
    def available(cls, model_path: str | Path = MODEL_PATH, sha256: str | None = MODEL_SHA256) -> bool:
        """True when a second opinion can be had: a runtime imports and the certified model loads."""
        return cls.load(model_path, sha256) is not None

    @classmethod
    def unavailable_reason(cls, model_path: str | Path = MODEL_PATH, sha256: str | None = MODEL_SHA256) -> str | None:
        """Why `load` gives None (for the technician's self-test), or None when it does not."""
        result = _load(str(model_path), sha256)
        return None if isinstance(result, MarkClassifier) else result.reason

    def classify(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim != 3 or crops.shape[1:] != (self.size, self.size) or crops.dtype != np.uint8:
            raise ValueError(f"classify: crops must be N x {self.size} x {self.size} uint8, got {crops.shape} {crops.dtype}")
        n = crops.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        # Batches are padded to a power of two so the interpreter reallocates its tensors rarely.
        batch = 1 << (n - 1).bit_length()
        x = np.zeros((batch, self.size, self.size, 1), dtype=np.float32)
        x[:n, :, :, 0] = model_input(crops)
        with self._lock:
            it = self._interpreter
            inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
            if batch != self._batch:
                it.resize_tensor_input(inp, list(x.shape))
                it.allocate_tensors()
                self._batch = batch
            it.set_tensor(inp, x)
            it.invoke()
            p = np.array(it.get_tensor(out), dtype=np.float64).reshape(batch)
        return p[:n]


def settle(p: float) -> str | None:
    """The second opinion on one marginal box: "mark", "empty", or None (it stays marginal)."""
    return "mark" if p >= MARK_AT else "empty" if p <= EMPTY_AT else None


def model_input(crops: np.ndarray) -> np.ndarray:
    """Crops (N x S x S uint8, paper 255) -> what the network sees: ink darkness in [0, 1], float32.
    Shared with the training script so the two can never differ."""
    return (np.float32(1.0) - crops.astype(np.float32) / np.float32(255.0))


# -- loading ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Unavailable:
    reason: str


def _runtimes() -> list[tuple[str, Any]]:
    """The tflite Interpreter classes that import, in order of preference: tflite-runtime, then
    ai-edge-litert (its successor, the one with wheels built for NumPy 2)."""
    found = []
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,import-untyped]

        found.append(("tflite-runtime", Interpreter))
    except ImportError:
        pass
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRtInterpreter  # type: ignore[import-not-found,import-untyped]

        found.append(("ai-edge-litert", LiteRtInterpreter))
    except ImportError:
        pass
    return found


@lru_cache(maxsize=4)
def _load(model_path: str, sha256: str | None) -> MarkClassifier | _Unavailable:
    try:
        content = Path(model_path).read_bytes()
    except OSError as exc:
        return _Unavailable(f"{model_path}: cannot read the model ({exc.strerror or exc})")
    digest = hashlib.sha256(content).hexdigest()
    if sha256 is not None and digest != sha256:
        return _Unavailable(f"{model_path}: sha256 {digest[:16]}... is not the certified model's {sha256[:16]}...")
    runtimes = _runtimes()
    if not runtimes:
        return _Unavailable("no tflite runtime installed (tflite-runtime or ai-edge-litert)")
    failures = []
    for name, interpreter_cls in runtimes:
        try:
            it = interpreter_cls(model_content=content, num_threads=1)
            it.allocate_tensors()
            ins, outs = it.get_input_details(), it.get_output_details()
        # tflite-runtime 2.14 (its last release) imports under NumPy 2 but fails here with SystemError;
        # a bad flatbuffer gives ValueError or RuntimeError. Either way: try the next runtime.
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if len(ins) != 1 or len(outs) != 1 or ins[0]["dtype"] != np.float32 or outs[0]["dtype"] != np.float32:
            return _Unavailable(f"{model_path}: expected one float32 input and one float32 output")
        shape = tuple(int(v) for v in ins[0]["shape"])
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1:
            return _Unavailable(f"{model_path}: input shape {shape} is not N x S x S x 1")
        return MarkClassifier(it, shape[1], name)
    return _Unavailable(f"{model_path}: no runtime could run the model ({'; '.join(failures)})")
