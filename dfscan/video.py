"""Stage 2: decode the sampled frames of one video. All decoding lives here.

PyAV is tried first: it decodes only the reference frames and the wanted ones,
about twice as fast as a full decode on long-GOP 1080p clips (bench/). A clip it
cannot read goes to decord (the reference model's own frame extraction used it),
then to OpenCV, read sequentially. All three give the same frames for the same
indices (tests/test_video.py). Frames come out as RGB uint8 arrays.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import VideoError

log = logging.getLogger(__name__)

REFERENCE_FRAMES: tuple[int, ...] = tuple(range(0, 271, 30))
# Fastest exact decoder first (bench/); each later one gets the files the earlier cannot read.
AUTO_ORDER = ("pyav", "decord", "opencv")
DECODERS = ("auto", *AUTO_ORDER)


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
            step = (parts[2] if len(parts) > 2 else None) or 1
            if stop is None:
                raise ValueError("a frame range needs an end, e.g. 0:271:30")
            indices = tuple(range(start, stop, step))
        elif re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
            indices = tuple(sorted({int(p) for p in text.split(",")}))
        else:
            raise ValueError(f"cannot read frames {text!r}: use START:STOP:STEP or a list like 0,30,60")
        if not indices:
            raise ValueError(f"frames {text!r} select no frame")
        return cls(indices=indices)

    @classmethod
    def spread(cls, count: int) -> "FrameSpec":
        if count < 1:
            raise ValueError("the number of frames must be at least 1")
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
    """The sampled frames of one video and what we learnt about the stream."""

    frames: list[np.ndarray]
    indices: tuple[int, ...]
    total_frames: int
    fps: float
    width: int
    height: int
    backend: str
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return self.total_frames / self.fps if self.fps > 0 else None


def read_frames(path: str | Path, spec: FrameSpec, backend: str = "auto", threads: int = 0) -> Clip:
    """Decode the frames `spec` asks for; raise VideoError when no backend can.

    `threads` is the number of decoding threads for this one video; 0 lets the decoder use
    every core. Several videos decoded at once are cheaper with one thread each (bench/).
    """
    path = str(path)
    not_video = _sniff(path)
    if not_video:  # decoders would read a lone image as a one-frame "video"
        raise VideoError(not_video)
    failures, reasons = [], []
    backends = AUTO_ORDER if backend == "auto" else (backend,)
    for name in backends:
        try:
            clip = _BACKENDS[name](path, spec, threads)
        except VideoError as exc:
            failures.append(f"{name}: {exc}")
            reasons.append(str(exc))
            continue
        if failures:
            clip.notes.append(f"decoded with {clip.backend} (" + "; ".join(failures) + ")")
        return clip
    plain = next((r for r in reasons if r in _PLAIN), None)
    raise VideoError(diagnose(path) or plain or "not a readable video (" + "; ".join(failures) + ")")


_MAGIC = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"),
          (b"PK\x03\x04", "a ZIP archive (or an office document)"))


def _sniff(path: str) -> str | None:
    """'a JPEG image, not a video' and the like, from the first bytes; None when it may be a video."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return next((f"{what}, not a video" for magic, what in _MAGIC if head.startswith(magic)), None)


def diagnose(path: str) -> str | None:
    """Why a file no decoder can open is not a video, when its first bytes tell."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
            size = os.fstat(fh.fileno()).st_size
            if head[4:8] == b"ftyp":
                return _diagnose_mp4(fh, size)
    except OSError:
        return None
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "a text file, not a video"
    return None


def _diagnose_mp4(fh, size: int) -> str | None:
    """Walk the top-level boxes of an MP4/MOV file looking for its index (moov)."""
    pos, boxes = 0, []
    while pos + 8 <= size:
        fh.seek(pos)
        header = fh.read(16)
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        if length == 1 and len(header) == 16:
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:
            length = size - pos
        if length < 8:
            break
        boxes.append(kind)
        if pos + length > size:
            return "the file is truncated (it ends in the middle of its data): an incomplete copy or download"
        pos += length
    if b"moov" not in boxes:
        return "the MP4 index (moov box) is missing: the file is truncated or was never finished"
    return None


# Decoder messages a journalist cannot act on, and what they mean.
_PLAIN_REASONS = (
    ("cannot find video stream", "no video stream in the file (audio only?)"),
    ("moov atom not found", "the MP4 index (moov atom) is missing: the file is truncated or still being written"),
    ("Invalid data found when processing input", "not a video format FFmpeg recognises (wrong extension?)"),
)
_PLAIN = {plain for _, plain in _PLAIN_REASONS}
_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def _short(exc: BaseException, path: str = "") -> str:
    """First meaningful line of a decoder's message, without source paths, short enough for a report cell."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith(("Stack", "File"))]
    text = _DECORD_PREFIX.sub("", lines[0]) if lines else type(exc).__name__
    for marker, plain in _PLAIN_REASONS:
        if marker in text:
            return plain
    if path:  # the report already names the file
        text = text.replace(f"ERROR opening: {path}, ", "cannot open: ").replace(f"[{path}] ", "")
        text = text.replace(path, "the file")
    return text if len(text) <= 160 else text[:157] + "..."


def _read_decord(path: str, spec: FrameSpec, threads: int) -> Clip:
    try:
        import decord
    except ImportError as exc:  # no wheel for this platform: OpenCV does the work
        raise VideoError("decord is not installed") from exc
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
        total = len(vr)
        fps = float(vr.get_avg_fps() or 0.0)
        indices = spec.resolve(total)
        if not indices:
            raise VideoError("the video has no frames")
        batch = vr.get_batch(list(indices)).asnumpy()
    except VideoError:
        raise
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError
        raise VideoError(_short(exc, path)) from exc
    frames = [np.ascontiguousarray(f) for f in batch]
    h, w = frames[0].shape[:2]
    return Clip(frames, indices, total, fps, w, h, "decord")


def _read_opencv(path: str, spec: FrameSpec, threads: int) -> Clip:
    import cv2

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
        wanted = spec.resolve(total)
        frames, indices, got = _grab_sequential(cap, wanted)
    finally:
        cap.release()
    if wanted and got <= wanted[-1]:
        # The container promised more frames than the stream holds: sample what exists.
        return _read_opencv_exact(path, spec, got, threads)
    if not frames:
        raise VideoError("the video has no decodable frames")
    h, w = frames[0].shape[:2]
    return Clip(frames, indices, max(total, got), fps, w, h, "opencv")


def _read_opencv_exact(path: str, spec: FrameSpec, total: int, threads: int) -> Clip:
    import cv2

    cap = _open_opencv(path, threads)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames, indices, _ = _grab_sequential(cap, spec.resolve(total))
    finally:
        cap.release()
    if not frames:
        raise VideoError("the video has no decodable frames")
    h, w = frames[0].shape[:2]
    clip = Clip(frames, indices, total, fps, w, h, "opencv")
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
    while cap.grab():
        n += 1
    return n


def _grab_sequential(cap, indices: Sequence[int]) -> tuple[list[np.ndarray], tuple[int, ...], int]:
    """Walk the stream once, keeping the wanted frames; returns frames, their indices, frames seen."""
    import cv2

    wanted = set(indices)
    frames, kept = [], []
    last = max(indices) if indices else -1
    pos = 0
    while pos <= last:
        if not cap.grab():
            break
        if pos in wanted:
            ok, frame = cap.retrieve()
            if ok and frame is not None:
                frames.append(_to_rgb(frame, cv2))
                kept.append(pos)
        pos += 1
    return frames, tuple(kept), pos


def _to_rgb(frame: np.ndarray, cv2) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _read_pyav(path: str, spec: FrameSpec, threads: int) -> Clip:
    """PyAV, decoding only what is needed: reference frames and the wanted frames.

    Non-reference frames (most B-frames) are needed by no other frame, so FFmpeg
    may skip them; the skip is switched off for the packets of the wanted frames,
    which therefore come out exactly as a full decode gives them. A frame's index
    is the rank of its timestamp, as for the other decoders, so variable frame
    rates are exact too.
    """
    try:
        import av
    except ImportError as exc:
        raise VideoError("PyAV is not installed") from exc
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError("no video stream in the file (audio only?)")
            stream = container.streams.video[0]
            total, fps = int(stream.frames or 0), float(stream.average_rate or 0)
            if total <= 0:  # no count in the header (WebM, MKV): count the packets, without decoding
                total = len(_presentation_ranks(container, stream, None))
                container.seek(0)
            indices = spec.resolve(total)
            if not indices:
                raise VideoError("the video has no frames")
            ranks = _presentation_ranks(container, stream, indices[-1])
        with av.open(path) as container:
            frames = _pyav_frames(container, container.streams.video[0], indices, ranks, threads)
    except VideoError:
        raise
    except Exception as exc:  # av.error.* and friends
        raise VideoError(_short(exc, path)) from exc
    if len(frames) != len(indices):
        missing = sorted(set(indices) - set(frames))
        raise VideoError(f"frames {missing[:5]} could not be decoded")
    first = frames[indices[0]]
    return Clip([frames[i] for i in indices], indices, total, fps, first.shape[1], first.shape[0], "pyav")


_REORDER_SLACK = 64  # packets read past the last wanted frame: more than any B-frame reordering depth


def _presentation_ranks(container, stream, last: int | None) -> dict[int, int]:
    """Timestamp -> frame index (its rank in presentation order), demuxing without decoding."""
    stamps = []
    for packet in container.demux(stream):
        if packet.pts is not None:
            stamps.append(packet.pts)
            if last is not None and len(stamps) > last + _REORDER_SLACK:
                break
    return {pts: i for i, pts in enumerate(sorted(set(stamps)))}


def _pyav_frames(container, stream, indices: tuple[int, ...], ranks: dict[int, int],
                 threads: int) -> dict[int, np.ndarray]:
    wanted, got = set(indices), {}
    stream.thread_type = "AUTO"
    codec = stream.codec_context
    codec.thread_count = threads
    for packet in container.demux(stream):
        if packet.pts is not None:
            codec.skip_frame = "DEFAULT" if ranks.get(packet.pts) in wanted else "NONREF"
        for frame in codec.decode(packet):
            index = ranks.get(frame.pts)
            if index in wanted:
                got[index] = frame.to_ndarray(format="rgb24")
        if len(got) == len(wanted):
            break
    return got


_BACKENDS = {"decord": _read_decord, "opencv": _read_opencv, "pyav": _read_pyav}
