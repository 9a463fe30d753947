"""What a model is: its file and SHA-256, its preprocessing, and its metadata (sidecar or registry), checked.

Preprocessing is a property of the model, never of the scanner: the reference model was trained
on BGR crops resized to 224x224 and scaled to 0..1, while Keras' own EfficientNet expects RGB 0..255.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..common.errors import ConfigError, ModelError, first_line
from ..common.text import printable
from ..verdicts.band import Band

COLOR_ORDERS = ("BGR", "RGB")
SCALES = {"0..1": 255.0, "0..255": 1.0}  # divisor applied to 0..255 pixels
RESIZES = ("stretch",)
OUTPUTS = ("p_fake", "p_real")  # what the network's one output is: P(FAKE), or P(REAL) (scored as 1 - p)
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 16, 1024  # 1024x1024 float32 is 12 MiB a crop, 400 MiB a batch of 32
MARGIN_RANGE = (0.0, 3.0)  # as --margin
MAX_NAME = 200



def _shown(value: Any) -> str:
    """A metadata value as an error message quotes it: short and printable."""
    text = repr(value)
    return printable(text if len(text) <= 60 else text[:57] + "...")


@dataclass(frozen=True)
class Preprocess:
    """How a face crop (RGB uint8, any size) becomes the model's float32 input."""

    input_size: tuple[int, int] = (224, 224)  # height, width
    color_order: str = "BGR"
    scale: str = "0..1"
    resize: str = "stretch"  # cv2.resize with bilinear interpolation, aspect ratio not kept

    def __post_init__(self):
        size = self.input_size
        if (not isinstance(size, tuple) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
                or not all(MIN_INPUT_SIDE <= v <= MAX_INPUT_SIDE for v in size)):
            raise ModelError(f"input_size must be two whole numbers of pixels from {MIN_INPUT_SIDE} to "
                             f"{MAX_INPUT_SIDE}, not {_shown(size)}")
        # isinstance first: a JSON list or object is unhashable, and `in` a dict would raise TypeError
        if not isinstance(self.color_order, str) or self.color_order not in COLOR_ORDERS:
            raise ModelError(f"unknown colour order {_shown(self.color_order)} (expected one of {COLOR_ORDERS})")
        if not isinstance(self.scale, str) or self.scale not in SCALES:
            raise ModelError(f"unknown input scale {_shown(self.scale)} (expected one of {tuple(SCALES)})")
        if not isinstance(self.resize, str) or self.resize not in RESIZES:
            raise ModelError(f"unknown resize rule {_shown(self.resize)} (expected one of {RESIZES})")

    def apply(self, crop_rgb: np.ndarray) -> np.ndarray:
        """One crop to a (H, W, 3) float32 array, exactly as the model card's recipe does."""
        import cv2

        img = crop_rgb if self.color_order == "RGB" else cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR)
        h, w = self.input_size
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        # Divide in float64, then cast: bit-identical to the card's `img / 255.0` + astype(float32).
        return (img / SCALES[self.scale]).astype(np.float32)

    @classmethod
    def from_dict(cls, data: Any) -> "Preprocess":
        if not isinstance(data, dict):
            raise ModelError(f"preprocessing must be an object, not {_shown(data)}")
        known = {k: data[k] for k in ("input_size", "color_order", "scale", "resize") if k in data}
        if "input_size" in known:
            size = known["input_size"]
            if not isinstance(size, (list, tuple)):
                raise ModelError(f"input_size must be [height, width], not {_shown(size)}")
            known["input_size"] = tuple(size)
        return cls(**known)


REFERENCE_PREPROCESS = Preprocess()


@dataclass(frozen=True)
class ModelInfo:
    """Where a model's bytes are, what they hash to, and how to feed it."""

    name: str
    path: Path
    sha256: str
    preprocess: Preprocess = REFERENCE_PREPROCESS
    threshold: float = 0.5
    margin: float | None = None  # face-crop margin the model was trained with, if known
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    source: str = ""  # a path, or hf://owner/repo/file
    revision: str | None = None  # the hub commit the bytes came from
    architecture: str | None = None  # a network dfscan builds in code (safe_load.ARCHITECTURES); None: Keras loads it
    output: str = "p_fake"  # see OUTPUTS
    uncertain: Band | None = None  # scores in this band get UNCERTAIN (dfscan/verdicts/band.py); None: no band
    notices: tuple[str, ...] = ()  # information, not warnings: e.g. the pin recorded at first use

    @property
    def label(self) -> str:
        """What reports print: name, hub revision if any, and the first 12 hex digits of the SHA-256."""
        rev = f"@{self.revision[:12]}" if self.revision else ""
        return f"{self.name}{rev} sha256:{self.sha256[:12]}"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sidecar_path(model_path: Path) -> Path:
    """`best_model.keras` is described by `best_model.json` beside it."""
    return model_path.with_suffix(".json")


def describe_local_model(path: str | os.PathLike) -> ModelInfo:
    """ModelInfo for a local .keras file, from its sidecar JSON or the reference profile."""
    from .safe_load import regular_file

    path = regular_file(path)  # a device or a pipe (--model /dev/zero) is refused before any read
    side = sidecar_path(path)
    meta: dict[str, Any] | None = None
    if side.is_file():
        meta = read_metadata(side)
    return model_info(path, meta, default_name=path.name, source=str(path))


MAX_SIDECAR = 1 << 20


def read_metadata(side: Path) -> Any:
    """A sidecar JSON file (at most 1 MiB), parsed; model_info checks what it says."""
    try:
        with open(side, "rb") as fh:
            raw = fh.read(MAX_SIDECAR + 1)
        if len(raw) > MAX_SIDECAR:
            raise ModelError(f"the model's metadata {side} is over 1 MiB: refused")
        return json.loads(raw)  # NaN and Infinity parse; the fields dfscan uses are range-checked
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's stack
        raise ModelError(f"cannot read the model's metadata {side}: {printable(first_line(exc, 200))}") from exc


def model_info(path: Path, meta: Any, *, default_name: str, source: str,
               revision: str | None = None) -> ModelInfo:
    """ModelInfo from a model file and its metadata (sidecar or registry entry), every field checked."""
    from .safe_load import ARCHITECTURES, regular_file

    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ModelError(f"the metadata of {printable(default_name)} must be a JSON object, not {_shown(meta)}")
    where = f"the metadata of {printable(default_name)}"
    warnings: list[str] = []
    prep_data = meta.get("preprocessing")
    try:
        if prep_data is None:
            missing = "has no metadata" if not meta else "names no preprocessing in its metadata"
            warnings.append(
                f"{printable(default_name)} {missing} ({sidecar_path(Path(path)).name}); assuming the reference "
                "model's preprocessing: BGR, resized to 224x224, scaled to 0..1"
            )
            prep = REFERENCE_PREPROCESS
        else:
            prep = Preprocess.from_dict(prep_data)
        name = meta.get("name") or default_name
        if not isinstance(name, str):
            raise ModelError(f"name must be text, not {_shown(name)}")
        threshold = _number(meta.get("threshold", 0.5), "threshold", 0.0, 1.0, open_interval=True)
        margin = (prep_data or {}).get("margin")
        if margin is not None:
            margin = _number(margin, "margin", *MARGIN_RANGE)
        architecture = meta.get("architecture")
        if architecture is not None and (not isinstance(architecture, str) or architecture not in ARCHITECTURES):
            raise ModelError(f"architecture {_shown(architecture)} is not one dfscan builds "
                             f"(known: {', '.join(ARCHITECTURES)})")
        output = meta.get("output", "p_fake")
        if not isinstance(output, str) or output not in OUTPUTS:
            raise ModelError(f"output must be one of {OUTPUTS}, not {_shown(output)}")
        uncertain = _band(meta.get("uncertain"), threshold)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    path = regular_file(path)
    sha256 = file_sha256(path)
    warnings += _calibrated_elsewhere(meta, sha256, default_name)
    return ModelInfo(
        name=_clean_name(name),
        path=path,
        sha256=sha256,
        preprocess=prep,
        threshold=threshold,
        margin=margin,
        metadata=meta,
        warnings=tuple(warnings),
        source=source,
        revision=revision,
        architecture=architecture,
        output=output,
        uncertain=uncertain,
    )


def _number(value: Any, what: str, low: float, high: float, open_interval: bool = False) -> float:
    """A finite number within [low, high] (or (low, high)), else a ModelError saying so."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = low < value < high if open_interval else low <= value <= high
    if not ok:
        span = f"({low:g}, {high:g})" if open_interval else f"[{low:g}, {high:g}]"
        raise ModelError(f"{what} must be a number in {span}, not {_shown(value)}")
    return float(value)


def _calibrated_elsewhere(meta: dict[str, Any], sha256: str, name: str) -> list[str]:
    """A warning when the metadata's threshold and band were calibrated on other model bytes."""
    calibration = meta.get("calibration")
    made_for = calibration.get("model_sha256") if isinstance(calibration, dict) else None
    if made_for in (None, sha256):
        return []
    return [f"the threshold and uncertain band in the metadata of {printable(name)} were calibrated (dfscan "
            "evaluate) on another model file: evaluate this one again"]


def _band(value: Any, threshold: float) -> Band | None:
    """The metadata's `uncertain` band, [LOW, HIGH] around its threshold, or None; else a ModelError."""
    try:
        band = Band.from_metadata(value)
        return band.check(threshold) if band is not None else None
    except ConfigError as exc:
        raise ModelError(str(exc)) from None


def _clean_name(name: str) -> str:
    """A model name fit for reports and terminals: printable, one line, bounded."""
    name = printable(name.strip())
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 3] + "..."
