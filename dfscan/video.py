"""Stage 2: decode the sampled frames of one video. All decoding lives here.

PyAV is tried first: it decodes only the reference frames and the wanted ones,
about twice as fast as a full decode on long-GOP 1080p clips (bench/). A clip it
cannot read goes to decord (the reference model's own frame extraction used it),
then to OpenCV, read sequentially. All three give the same frames for the same
indices (tests/test_video.py). Frames come out as RGB uint8 arrays, or as what the
caller's `keep` makes of each one as soon as it is decoded (the scan keeps face crops).

Every file is untrusted: read_frames first has container.open_checked open it with PyAV,
restricted and within limits, and refuse it otherwise; decord and OpenCV, which cannot be
restricted that way, only ever get files that passed. PyAV decodes from that same container.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .constants import AUTO_ORDER
from .container import (MAX_FRAME_PIXELS, PLAIN_REASONS, FrameTooLarge, check_frame_sizes, decoder_message,
                        diagnose, frame_too_large, open_checked, refused_size)
from .errors import VideoError

log = logging.getLogger(__name__)

REFERENCE_FRAMES: tuple[int, ...] = tuple(range(0, 271, 30))

MAX_FRAMES, MAX_SAMPLED = 5_000_000, 10_000  # a clip's frames (46 h at 30 fps; see container.py), frames sampled


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
        if len(indices) > MAX_SAMPLED or indices[-1] >= MAX_FRAMES:  # a usage error, not a MemoryError later
            raise ValueError(f"frames {text[:30]!r}: sample 1 to {MAX_SAMPLED:,} frames of 0 to {MAX_FRAMES - 1:,}")
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


_ORDERS_BY_STAMPS = ("decord",)  # seeks by the same timestamps PyAV reads: MPEG-PS frames came out shuffled


class KeepError(Exception):
    """The caller's `keep` failed on a frame: not the decoder's fault, so no other decoder is tried."""


@dataclass(frozen=True)
class Source:
    """A file that passed container.open_checked: its absolute path and the PyAV container open on it."""

    path: str
    container: Any


def read_frames(path: str | Path, spec: FrameSpec, backend: str = "auto", threads: int = 0,
                keep: Callable[[np.ndarray], Any] | None = None, inspect: Callable[[Any], Any] | None = None) -> Clip:
    """Decode the frames `spec` asks for; raise VideoError when no backend can.

    `threads` is the number of decoding threads for this one video; 0 lets the decoder use
    every core. Several videos decoded at once are cheaper with one thread each (bench/).
    `keep`, when given, gets each frame as soon as it is decoded and the clip holds what it
    returns instead of the frame, so that no more than one full frame is held at a time. It
    should have no side effects: a decoder failing half-way hands the frames to the next one.
    An exception from it comes out as KeepError. `inspect` reads the checked container after decoding (Clip.facts).
    """
    path = os.path.abspath(path)  # FFmpeg, in all three decoders, would read "subfile:x.mp4" as a protocol
    with open_checked(path) as container:  # opened and checked once: PyAV decodes from it, the others get the path
        clip = _decode(Source(path, container), spec, backend, threads, keep)
        return replace(clip, facts=inspect(container)) if inspect else clip


def _decode(source: Source, spec: FrameSpec, backend: str, threads: int,
            keep: Callable[[np.ndarray], Any] | None) -> Clip:
    """Try the decoders in turn; the first that reads the clip gives it, with notes on those that failed."""
    failures, reasons = [], []
    backends = AUTO_ORDER if backend == "auto" else (backend,)
    unordered = sized = False
    for name in backends:
        if unordered and backend == "auto" and name in _ORDERS_BY_STAMPS:
            failures.append(f"{name}: not tried, it orders frames by the same timestamps")
            continue
        if name != "pyav" and not sized:  # decord and OpenCV decode frames of any size: check first
            _check_sizes(source, rewind=bool(failures))
            sized = True
        try:
            clip = _BACKENDS[name](source, spec, threads, _guarded(keep))
        except FrameTooLarge:
            raise  # past the limit: no other decoder may read the file
        except VideoError as exc:
            failures.append(f"{name}: {exc}")
            reasons.append(str(exc))
            unordered = unordered or isinstance(exc, UnorderedStamps)
            continue
        if failures:
            clip.notes.append(f"decoded with {clip.backend} (" + "; ".join(failures) + ")")
        return clip
    plain = next((r for r in reasons if r in PLAIN_REASONS), None)
    raise VideoError(diagnose(source.path) or plain or "not a readable video (" + "; ".join(failures) + ")")


def _guarded(keep: Callable[[np.ndarray], Any] | None) -> Callable[[np.ndarray], Any]:
    if keep is None:
        return lambda frame: frame

    def guarded(frame: np.ndarray) -> Any:
        try:
            return keep(frame)
        except Exception as exc:
            raise KeepError(f"{type(exc).__name__}: {exc}") from exc

    return guarded


def _check_sizes(source: Source, rewind: bool) -> None:
    """container.check_frame_sizes on the file, from its first packet (PyAV may have read some)."""
    if rewind:
        try:
            source.container.seek(0)
        except Exception:  # raw H.264/HEVC streams cannot seek back: open them again
            with open_checked(source.path) as container:
                return check_frame_sizes(container, MAX_FRAMES + 1)
    check_frame_sizes(source.container, MAX_FRAMES + 1)


def _check_size(frame: np.ndarray, index: int) -> None:
    """The last guard, for a size change check_frame_sizes cannot see (one between keyframes)."""
    height, width = frame.shape[:2]
    if width * height > MAX_FRAME_PIXELS:
        raise frame_too_large(index, width, height)


def _check_length(total: int) -> None:
    if total > MAX_FRAMES:
        raise VideoError(f"the stream claims {total:,} frames, more than dfscan reads ({MAX_FRAMES:,}, limit)")


def _read_decord(source: Source, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    path = source.path
    try:
        import decord
    except ImportError as exc:  # no wheel for this platform: OpenCV does the work
        raise VideoError("decord is not installed") from exc
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
        total = len(vr)
        fps = float(vr.get_avg_fps() or 0.0)
        _check_length(total)
        indices = spec.resolve(total)
        if not indices:
            raise VideoError("the video has no frames")
        h = w = 0
        frames = []
        for i in indices:  # one frame at a time: a batch holds every frame at full size
            frame = np.ascontiguousarray(vr.get_batch([i]).asnumpy()[0])
            _check_size(frame, i)
            h, w = frame.shape[:2]
            frames.append(keep(frame))
            del frame
    except (VideoError, KeepError):
        raise
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError
        raise VideoError(decoder_message(exc, path)) from exc
    return Clip(frames, indices, total, fps, w, h, "decord")


def _read_opencv(source: Source, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    import cv2

    path = source.path
    cap = _open_opencv(path, threads)
    try:
        if not cap.isOpened():
            raise VideoError("OpenCV cannot open it")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if total <= 0:  # no count in the header (e.g. WebM): count, then start again from the top
            total = _count_frames(cap)
            cap.release()
            cap = _open_opencv(path, threads)
        _check_length(total)
        wanted = spec.resolve(total)
        frames, indices, got, size = _grab_sequential(cap, wanted, keep)
    finally:
        cap.release()
    if wanted and got <= wanted[-1]:
        # The container promised more frames than the stream holds: sample what exists.
        return _read_opencv_exact(path, spec, got, threads, keep)
    if not frames:
        raise VideoError("the video has no decodable frames")
    return Clip(frames, indices, max(total, got), fps, *size, "opencv")


def _read_opencv_exact(path: str, spec: FrameSpec, total: int, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    import cv2

    cap = _open_opencv(path, threads)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames, indices, _, size = _grab_sequential(cap, spec.resolve(total), keep)
    finally:
        cap.release()
    if not frames:
        raise VideoError("the video has no decodable frames")
    clip = Clip(frames, indices, total, fps, *size, "opencv")
    clip.notes.append(f"stream holds {total} frames, fewer than its header says")
    return clip


def _open_opencv(path: str, threads: int):
    import cv2

    if threads:
        cap = cv2.VideoCapture(path, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, threads])
        if cap.isOpened():
            return cap
        cap.release()  # a backend that takes no thread count may still read the file
    return cv2.VideoCapture(path)


def _count_frames(cap) -> int:
    n = 0
    while n <= MAX_FRAMES and cap.grab():
        n += 1
    return n


def _grab_sequential(cap, indices: Sequence[int], keep: Callable[[np.ndarray], Any]
                     ) -> tuple[list[Any], tuple[int, ...], int, tuple[int, int]]:
    """Walk the stream once, keeping the wanted frames; returns them, their indices, frames seen, (width, height)."""
    import cv2

    wanted = set(indices)
    frames, kept, size = [], [], (0, 0)
    last = max(indices) if indices else -1
    pos = 0
    while pos <= last:
        if not cap.grab():
            break
        if pos in wanted:
            ok, frame = cap.retrieve()
            if ok and frame is not None:
                _check_size(frame, pos)
                rgb = _to_rgb(frame, cv2)
                del frame
                size = (rgb.shape[1], rgb.shape[0])
                frames.append(keep(rgb))
                kept.append(pos)
        pos += 1
    return frames, tuple(kept), pos, size


def _to_rgb(frame: np.ndarray, cv2) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _read_pyav(source: Source, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    """PyAV, decoding only what is needed: reference frames and the wanted frames.

    Non-reference frames (most B-frames) are needed by no other frame, so FFmpeg
    may skip them; the skip is switched off for the packets of the wanted frames,
    which therefore come out exactly as a full decode gives them. A frame's index
    is the rank of its timestamp, as for the other decoders, so variable frame
    rates are exact too. Reads the container open_checked opened: no second open.
    """
    container = source.container
    try:
        stream = container.streams.video[0]
        total, fps = int(stream.frames or 0), float(stream.average_rate or 0)
        if total <= 0:  # no count in the header (WebM, MKV, MPEG-PS): count the packets, without decoding
            total = _count_stamps(container, stream)
            if not total:  # FFmpeg cannot seek back in these either ("Operation not permitted")
                raise UnorderedStamps("no timestamps in the stream (a raw H.264/HEVC stream?): "
                                      "OpenCV reads it in order")
            container.seek(0)
        _check_length(total)
        indices = spec.resolve(total)
        if not indices:
            raise VideoError("the video has no frames")
        stamps = _presentation_stamps(container, stream, indices[-1])
        ranks = {int(stamps[i]): i for i in indices if i < len(stamps)}  # only the wanted frames' stamps
        del stamps
        container.seek(0)  # back to the first packet: the decoding pass
        frames, size = _pyav_frames(container, stream, indices, ranks, threads, keep)
    except (VideoError, KeepError):
        raise
    except Exception as exc:  # av.error.* and friends
        raise VideoError(decoder_message(exc, source.path)) from exc
    if len(frames) != len(indices):
        missing = sorted(set(indices) - set(frames))
        raise VideoError(f"frames {missing[:5]} could not be decoded")
    return Clip([frames[i] for i in indices], indices, total, fps, *size, "pyav")


def _count_stamps(container, stream) -> int:
    """The number of frames, from the packets' timestamps; VideoError when those cannot tell frames apart."""
    stamps, packets = _presentation_stamps(container, stream, None, count=True)
    if len(stamps) < packets:  # MPEG-PS: frames packed together get guessed stamps, and B-frames collide
        raise UnorderedStamps(f"{packets - len(stamps)} frames share a timestamp with another: "
                              "OpenCV reads it in order")
    return len(stamps)


_REORDER_SLACK = 64  # packets read past the last wanted frame: more than any B-frame reordering depth


def _presentation_stamps(container, stream, last: int | None, count: bool = False):
    """The stream's distinct timestamps in presentation order (frame index -> timestamp), demuxing without decoding.

    Reads up to `last` + a reordering slack packets; all of them (at most MAX_FRAMES + 1) when `last` is None.
    With `count`, also the number of stamped packets read.
    """
    from array import array

    stamps = array("q")  # 8 bytes a packet: a long clip's list of ints would take ~5x more
    limit = MAX_FRAMES + 1 if last is None else last + _REORDER_SLACK + 1
    for packet in container.demux(stream):
        if packet.pts is not None:
            stamps.append(packet.pts)
            if len(stamps) >= limit:
                break
    unique = np.unique(np.frombuffer(stamps, dtype=np.int64)) if stamps else np.empty(0, np.int64)
    return (unique, len(stamps)) if count else unique


def _pyav_frames(container, stream, indices: tuple[int, ...], ranks: dict[int, int], threads: int,
                 keep: Callable[[np.ndarray], Any]) -> tuple[dict[int, Any], tuple[int, int]]:
    got, size = {}, [0, 0]
    stream.thread_type = "AUTO"
    codec = stream.codec_context
    codec.thread_count = threads
    codec.options = {"max_pixels": str(MAX_FRAME_PIXELS)}  # a size change mid-stream is refused too

    def take(frames) -> None:
        for frame in frames:
            index = ranks.get(frame.pts)
            if index is not None and index not in got:
                rgb = frame.to_ndarray(format="rgb24")
                size[:] = rgb.shape[1], rgb.shape[0]
                got[index] = keep(rgb)

    # The wanted frames' packets lie among the first ones (see _presentation_stamps): past them,
    # flush the decoder's delayed frames instead of walking the rest of the file.
    walked, limit = 0, indices[-1] + _REORDER_SLACK + 1
    for seen, packet in enumerate(container.demux(stream)):
        if packet.pts is not None:
            walked += 1
            codec.skip_frame = "DEFAULT" if packet.pts in ranks else "NONREF"
        try:
            decoded = codec.decode(packet)
        except Exception as exc:
            if refused_size(exc):  # the frames grew past the limit open_checked saw the first of
                raise frame_too_large(seen) from exc
            raise
        take(decoded)
        if len(got) == len(ranks):
            break
        if walked >= limit:
            take(codec.decode(None))
            break
    return got, tuple(size)


_BACKENDS = {"decord": _read_decord, "opencv": _read_opencv, "pyav": _read_pyav}
