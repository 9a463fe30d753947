"""The range of every numeric scan setting, declared once: the flags (cli/options.py) and the library's
configs (ScanConfig, FaceConfig) both check against it, and every refusal says the range.

Upper bounds keep a typo from turning into a scan that exhausts memory: 10,000 faces a frame, a
detector image of 100,000 pixels a side, a batch of a million crops.
"""
from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

# setting -> (lowest, highest), both allowed
RANGES: dict[str, tuple[float, float]] = {
    "max_faces": (1, 100),  # a crowd: docs/verdicts.md measures 50 a frame
    "detect_size": (64, 4096),
    "face_confidence": (0.05, 0.99),
    "margin": (0.0, 3.0),
    "batch_size": (1, 1024),
    "workers": (1, 256),
    "threshold": (0.0, 1.0),
    "num_frames": (1, 10_000),  # decode/frames.py MAX_SAMPLED
    "actors": (1, 256),
    "video_timeout": (0.1, 86_400.0),  # seconds a video's decoding may take (a day at most)
    "epochs": (1, 10_000),
    "input_size": (32, 1024),  # model_info.MAX_INPUT_SIDE
}


def shown_range(name: str) -> str:
    low, high = RANGES[name]
    return f"{low:g} to {high:g}"


def check(name: str, value: Any) -> None:
    """Raise ConfigError unless `value` is a number within the setting's range (None: not set, allowed)."""
    if value is None:
        return
    low, high = RANGES[name]
    whole = isinstance(low, int) and isinstance(high, int)
    ok = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and low <= value <= high):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{name} must be {kind} from {shown_range(name)}, not {str(value)[:40]}")


def check_all(values: dict[str, Any]) -> None:
    for name, value in values.items():
        check(name, value)
