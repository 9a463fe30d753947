"""What to decode and what comes out: the frame spec, the clip, and the limits every decoder keeps."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..common.errors import VideoError
from . import container as checks
from .container import LimitExceeded, frame_too_large

REFERENCE_FRAMES: tuple[int, ...] = tuple(range(0, 271, 30))

MAX_FRAMES, MAX_SAMPLED = 5_000_000, 10_000  # a clip's frames (46 h at 30 fps; see container.py), frames sampled
MAX_INDEX = MAX_FRAMES - 1  # the largest frame index a sample may name (fixed: tests lower MAX_FRAMES to decode)


@dataclass(frozen=True)
class FrameSpec:
    """Which frames to sample: fixed indices, or `count` frames spread over the clip."""

    indices: tuple[int, ...] = REFERENCE_FRAMES
    count: int | None = None

    @classmethod
    def parse(cls, text: str) -> "FrameSpec":
        """Read 'START:STOP:STEP' (Python slice rules) or a comma-separated list."""
        text = text.strip()
        if re.fullmatch(r"\d*:\d*(:\d*)?", text):
            parts = [int(p) if p else None for p in text.split(":")]
            start, stop = parts[0] or 0, parts[1]
            if stop is None:
                raise ValueError("a frame range needs an end, e.g. 0:271:30")
            indices = range(start, stop, (parts[2] if len(parts) > 2 else None) or 1)  # a tuple could exhaust memory
        elif re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
            indices = sorted({int(p) for p in text.split(",")})
        else:
            raise ValueError(f"cannot read frames {text!r}: use START:STOP:STEP or a list like 0,30,60")
        if not indices:
            raise ValueError(f"frames {text!r} select no frame")
        if len(indices) > MAX_SAMPLED or indices[-1] > MAX_INDEX:  # a usage error, not a MemoryError later
            raise ValueError(f"frames {text[:30]!r}: sample 1 to {MAX_SAMPLED:,} frames of 0 to {MAX_INDEX:,}")
        return cls(indices=tuple(indices))

    @classmethod
    def spread(cls, count: int) -> "FrameSpec":
        if not 1 <= count <= MAX_SAMPLED:
            raise ValueError(f"the number of frames must be from 1 to {MAX_SAMPLED:,}, not {count}")
        return cls(indices=(), count=count)

    def resolve(self, total_frames: int) -> tuple[int, ...]:
        """The frame indices to decode from a clip of `total_frames` frames.

        A clip too short for the fixed indices gets the same number of frames
        spread over its whole length, so that it is not judged on one frame.
        """
        if total_frames <= 0:
            return ()
        if self.count is not None:
            return spread_indices(total_frames, self.count)
        if self.indices[-1] < total_frames:
            return self.indices
        return spread_indices(total_frames, len(self.indices))

    def describe(self) -> str:
        if self.count is not None:
            return f"{self.count} spread"
        idx = self.indices
        if len(idx) > 2 and len(set(np.diff(idx))) == 1:
            return f"{idx[0]}:{idx[-1] + 1}:{idx[1] - idx[0]}"
        return ",".join(map(str, idx))


def spread_indices(total_frames: int, count: int) -> tuple[int, ...]:
    """`count` indices spread evenly from the first to the last frame."""
    if total_frames <= count:
        return tuple(range(total_frames))
    return tuple(int(i) for i in np.unique(np.linspace(0, total_frames - 1, count).round().astype(int)))


@dataclass
class Clip:
    """The sampled frames of one video (or what `keep` made of each) and what we learnt about the stream."""

    frames: list[Any]
    indices: tuple[int, ...]
    total_frames: int
    fps: float
    width: int
    height: int
    backend: str
    notes: list[str] = field(default_factory=list)
    facts: Any = None  # what read_frames' `inspect` made of the open container

    @property
    def duration_s(self) -> float | None:
        return self.total_frames / self.fps if self.fps > 0 else None


class UnorderedStamps(VideoError):
    """The stream's timestamps cannot put its frames in order: only a decoder that reads in order gets them right."""


class KeepError(Exception):
    """The caller's `keep` failed on a frame: not the decoder's fault, so no other decoder is tried."""


def check_length(total: int) -> None:
    """LimitExceeded past MAX_FRAMES (read at call time: tests lower it)."""
    if total > MAX_FRAMES:
        raise LimitExceeded(f"the stream claims {total:,} frames, more than dfscan reads ({MAX_FRAMES:,}, limit)")


def check_size(frame: np.ndarray, index: int) -> None:
    """The last guard, for a size change container.check_frame_sizes cannot see (one between keyframes)."""
    height, width = frame.shape[:2]
    if width * height > checks.MAX_FRAME_PIXELS:
        raise frame_too_large(index, width, height)
