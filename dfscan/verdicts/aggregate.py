"""Stage 5: many face scores -> one score and one verdict per video."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..common.constants import AGGREGATES
from ..results import Verdict
from .band import Band

# The "confident" rule: faces the model is sure about outweigh the unsure ones.
CONFIDENT_FAKE = 0.8
CONFIDENT_REAL = 0.2
FAKE_SHARE = 1 / 3  # this share of faces confidently FAKE makes the video's score their mean
REAL_SHARE = 0.9  # this share confidently REAL makes the score the mean of those


def aggregate(scores: Sequence[float], method: str = "confident") -> float:
    """One video score from its face scores (each a FAKE probability)."""
    if not len(scores):
        raise ValueError("no face scores to aggregate")
    p = np.asarray(scores, dtype=np.float64)
    if method == "mean":
        return float(p.mean())
    if method == "max":
        return float(p.max())
    if method == "confident":
        return _confident(p)
    raise ValueError(f"unknown aggregation {method!r} (expected one of {AGGREGATES})")


def _confident(p: np.ndarray) -> float:
    """The DFDC winner's 'confident strategy', with shares instead of absolute counts.

    The original needs more than 11 confident faces, which a 10-frame sample can
    never reach; here a third of the faces being confidently FAKE is enough.
    """
    n = len(p)
    fake = p[p > CONFIDENT_FAKE]
    if len(fake) >= max(1, math.ceil(n * FAKE_SHARE)):
        return float(fake.mean())
    real = p[p < CONFIDENT_REAL]
    if len(real) >= math.ceil(n * REAL_SHARE):
        return float(real.mean())
    return float(p.mean())


def verdict(score: float, threshold: float, *, band: "Band | None" = None) -> Verdict:
    """FAKE when the score is above the threshold (the model card's `p > 0.5`); with an uncertain
    `band` (which holds the threshold), UNCERTAIN for scores in (band.low, band.high]."""
    if band is not None:
        band.check(threshold)
        if band.holds(score):
            return Verdict.UNCERTAIN
        return Verdict.FAKE if score > band.high else Verdict.REAL
    return Verdict.FAKE if score > threshold else Verdict.REAL


# A scan whose face scores barely vary learnt nothing from the faces (a random or frozen-phase
# model scores every crop ~0.5): its verdicts are noise around the threshold and must say so.
FLAT_MIN_FACES = 20
FLAT_SPAN = 0.01


def flat_scores_note(scores: Sequence[float]) -> str | None:
    """A warning when FLAT_MIN_FACES or more face scores span less than FLAT_SPAN; else None."""
    if len(scores) < FLAT_MIN_FACES:
        return None
    lo, hi = float(min(scores)), float(max(scores))
    if hi - lo >= FLAT_SPAN:
        return None
    return (f"the model gave nearly the same score to every face ({len(scores)} faces, all within "
            f"{lo:.3f}..{hi:.3f}): its verdicts carry no information")
