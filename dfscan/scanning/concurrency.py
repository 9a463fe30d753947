"""A local scan's threads: the cores it may use, decoding threads per video, Ctrl-C-friendly waits, time per stage."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers() -> int:
    """Videos decoded at once: one per core, plus one, so that a core whose worker waits (for the
    GIL, for its crops to be taken) has another video to decode (bench/: on 2 cores, DFDC 1080p went
    from 1.29x to 1.22x the decode floor; 16 cores: one per core scaled best of 1 to 16)."""
    return available_cores() + 1


def decode_threads(videos: int, workers: int) -> int:
    """Decoding threads per video: the cores shared among the videos decoded at once.

    FFmpeg's own choice (cores + 1 frame threads per video) pays off little when only
    reference frames are decoded and oversubscribes the cores when several videos are
    decoded side by side (bench/: one thread each made scans on 2 cores ~10% faster).
    """
    return max(1, available_cores() // max(1, min(videos, workers)))


def interruptible_result(future: Future, poll_s: float = 0.2):
    """future.result(), waking up regularly: an untimed wait would hold Ctrl-C back until the
    video is decoded when the signal is delivered to another thread (then nothing wakes this one)."""
    while True:
        try:
            return future.result(timeout=poll_s)
        except FutureTimeout:
            continue


class StageTimes:
    """Seconds spent per stage, summed over threads (decode and detect overlap the network)."""

    STAGES = ("hash", "decode", "detect", "classify", "wait", "credentials", "facts")  # facts: within decode

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds = dict.fromkeys(self.STAGES, 0.0)

    @contextmanager
    def timing(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds
