"""Stage 2: decode the sampled frames of one video: what the rest of dfscan (and its users) import from
dfscan.decode, in one place.

Frames come out as RGB uint8 arrays, or as what the caller's `keep` makes of each one as soon
as it is decoded (the scan keeps face crops). With a `timeout`, decoding runs in a worker
process that is killed past the deadline (decode/worker.py); without, in this process.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .container import MAX_FRAME_PIXELS, FrameTooLarge, LimitExceeded
from .frames import MAX_FRAMES, REFERENCE_FRAMES, Clip, FrameSpec, KeepError, UnorderedStamps, spread_indices
from .source import _BACKENDS, Source
from .source import read_frames as _read_here

__all__ = ["MAX_FRAME_PIXELS", "MAX_FRAMES", "REFERENCE_FRAMES", "Clip", "FrameSpec", "FrameTooLarge", "KeepError",
           "LimitExceeded", "Source", "UnorderedStamps", "read_frames", "spread_indices", "_BACKENDS"]


def read_frames(path: str | Path, spec: FrameSpec, backend: str = "auto", threads: int = 0,
                keep: Callable[[np.ndarray], Any] | None = None, inspect: Callable[[Any], Any] | None = None,
                timeout: float | None = None, isolated: bool = False) -> Clip:
    """Decode the frames `spec` asks for, from the stream a player shows; raise VideoError when no backend can.

    `threads` is the number of decoding threads for this one video; 0 lets the decoder use
    every core. Several videos decoded at once are cheaper with one thread each (bench/).
    `keep`, when given, gets each frame as soon as it is decoded and the clip holds what it
    returns instead of the frame, so that no more than one full frame is held at a time. It
    should have no side effects: a decoder failing half-way hands the frames to the next one.
    An exception from it comes out as KeepError. `inspect` reads the checked container (Clip.facts).

    `isolated` (or a `timeout`) decodes in a worker process, killed after `timeout` seconds (None:
    worker.default_timeout) with DecodeTimeout; `inspect` must then be a module-level function.
    """
    if timeout is None and not isolated:
        return _read_here(str(path), spec, backend, threads, keep, inspect)
    from .worker import read_in_worker

    return read_in_worker(str(path), spec, backend, threads, keep, inspect, timeout)
