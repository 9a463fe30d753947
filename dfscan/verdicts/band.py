"""The uncertain band: video scores near the threshold, where the model's verdict is not to be trusted.

A score above HIGH is FAKE, a score at or below LOW is REAL, and a score in between (LOW, HIGH] is
UNCERTAIN: a person must look. With LOW == HIGH == threshold the band is empty and the verdicts
are the plain threshold rule (FAKE when score > threshold).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Union

from ..common.errors import ConfigError

OFF = "none"  # `--uncertain none`, `ScanConfig(uncertain="none")`: no band, whatever the model says
BandSetting = Union["Band", str, None]  # a Band, OFF, or None: the model's own (sidecar or registry)


@dataclass(frozen=True)
class Band:
    """Scores in (low, high] are UNCERTAIN; 0 <= low <= high <= 1 (and the threshold lies within)."""

    low: float
    high: float

    def __post_init__(self):
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                 for v in (self.low, self.high))
        if not ok or not 0.0 <= self.low <= self.high <= 1.0:
            raise ConfigError(f"uncertain band {_shown(self.low)}:{_shown(self.high)} is out of range: "
                              "it must be LOW:HIGH with 0 <= LOW <= HIGH <= 1")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    def check(self, threshold: float) -> "Band":
        """This band, if it holds `threshold` (0 <= low <= threshold <= high <= 1); else a ConfigError."""
        if not self.low <= threshold <= self.high:
            raise ConfigError(f"uncertain band {self} must hold the threshold {threshold:g}: "
                              f"0 <= LOW <= {threshold:g} <= HIGH <= 1")
        return self

    def holds(self, score: float) -> bool:
        return self.low < score <= self.high

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}"

    @classmethod
    def parse(cls, text: str) -> "Band | str":
        """'LOW:HIGH' -> Band; 'none' -> OFF."""
        text = text.strip()
        if text.lower() == OFF:
            return OFF
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*:\s*([0-9]*\.?[0-9]+)", text)
        if m is None:
            raise ConfigError(f"cannot read the uncertain band {text[:40]!r}: use LOW:HIGH (e.g. 0.4:0.6) or none")
        return cls(float(m.group(1)), float(m.group(2)))

    @classmethod
    def from_metadata(cls, value: Any) -> "Band | None":
        """A model's `uncertain`: [LOW, HIGH] or null (no band); a ConfigError for anything else."""
        if value is None:
            return None
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ConfigError(f"uncertain must be [LOW, HIGH] with 0 <= LOW <= threshold <= HIGH <= 1, or null, "
                              f"not {_shown(value)}")
        return cls(value[0], value[1])


def setting(value: Any) -> BandSetting:
    """What ScanConfig.uncertain accepts: None (the model's), OFF, a Band, or 'LOW:HIGH' text."""
    if value is None or isinstance(value, Band):
        return value
    if isinstance(value, str):
        return Band.parse(value)
    raise ConfigError(f"uncertain must be a Band, 'LOW:HIGH', 'none' or None, not {_shown(value)}")


def resolve(setting_: BandSetting, model_band: "Band | None", threshold: float,
            threshold_given: bool) -> tuple["Band | None", str | None]:
    """The band a scan uses, and a warning when the model's band had to be widened.

    A band the user gave must hold the threshold (ConfigError otherwise). The model's own band was
    chosen around the model's threshold: when the user moved the threshold outside it, the band is
    widened to reach the new threshold, and the warning says so.
    """
    if setting_ == OFF:
        return None, None
    if isinstance(setting_, Band):
        return setting_.check(threshold), None
    if model_band is None:
        return None, None
    if model_band.low <= threshold <= model_band.high or not threshold_given:
        return model_band.check(threshold), None
    wide = Band(min(model_band.low, threshold), max(model_band.high, threshold))
    return wide, (f"the threshold {threshold:g} lies outside the model's uncertain band {model_band}: "
                  f"the band is widened to {wide} (choose one with --uncertain LOW:HIGH, or none)")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
