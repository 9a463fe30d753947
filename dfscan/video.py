"""Stage 2: decode the sampled frames of one video. All decoding lives here.

PyAV is tried first: it decodes only the reference frames and the wanted ones,
about twice as fast as a full decode on long-GOP 1080p clips (bench/). A clip it
cannot read goes to decord (the reference model's own frame extraction used it),
then to OpenCV, read sequentially. All three give the same frames for the same
indices (tests/test_video.py). Frames come out as RGB uint8 arrays, or as what the
caller's `keep` makes of each one as soon as it is decoded (the scan keeps face crops).

Every file is untrusted. Before any decoder sees it, `check_container` opens it with PyAV
restricted to the containers of real videos (no concat scripts or playlists, which make
FFmpeg open other files: one that lists itself exhausts the file handles and crashes
decord) and to local files, and refuses what exceeds the limits below. decord and OpenCV,
which cannot be restricted that way, only ever get files that passed this check.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .constants import AUTO_ORDER
from .errors import VideoError

log = logging.getLogger(__name__)

REFERENCE_FRAMES: tuple[int, ...] = tuple(range(0, 271, 30))

# What real videos need, with room to spare; a file beyond a limit gets a clear ERROR row.
MAX_FRAME_PIXELS = 8192 * 4320  # DCI 8K (35.4 Mpx), the largest frames cameras record; 8K UHD is 7680x4320
MAX_STREAMS = 64  # video, audio, subtitle and data tracks together; broadcast MXF files carry ~20
MAX_FRAMES = 5_000_000  # frames a clip may hold or a decoder may walk: 46 hours at 30 fps
MAX_MP4_BOXES = 1_000_000  # top-level MP4 boxes: ~10 in a camera file, 2 per fragment in fragmented MP4
# FFmpeg demuxers of real video files. Left out: concat scripts, playlists (HLS, DASH), image
# sequences, network and device inputs: formats that read other files, or no video at all.
CONTAINERS = ("mov", "matroska", "avi", "asf", "flv", "mpeg", "mpegts", "ogg", "mxf", "dv", "rm", "nut",
              "wtv", "ivf", "obu", "h264", "hevc", "m4v", "mpegvideo", "yuv4mpegpipe")
_AV_OPTIONS = {
    "format_whitelist": ",".join(CONTAINERS),
    "protocol_whitelist": "file",  # a demuxer may open nothing but local files
    "max_streams": str(MAX_STREAMS + 1),  # FFmpeg drops streams past this; one more tells us there were too many
    "max_pixels": str(MAX_FRAME_PIXELS),  # decoders refuse larger frames, also when the size changes mid-stream
}


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
    """The sampled frames of one video (or what `keep` made of each) and what we learnt about the stream."""

    frames: list[Any]
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


class KeepError(Exception):
    """The caller's `keep` failed on a frame: not the decoder's fault, so no other decoder is tried."""


def read_frames(path: str | Path, spec: FrameSpec, backend: str = "auto", threads: int = 0,
                keep: Callable[[np.ndarray], Any] | None = None) -> Clip:
    """Decode the frames `spec` asks for; raise VideoError when no backend can.

    `threads` is the number of decoding threads for this one video; 0 lets the decoder use
    every core. Several videos decoded at once are cheaper with one thread each (bench/).
    `keep`, when given, gets each frame as soon as it is decoded and the clip holds what it
    returns instead of the frame, so that no more than one full frame is held at a time. It
    should have no side effects: a decoder failing half-way hands the frames to the next one.
    An exception from it comes out as KeepError.
    """
    path = os.path.abspath(path)  # FFmpeg, in all three decoders, would read "subfile:x.mp4" as a protocol
    check_container(path)
    failures, reasons = [], []
    backends = AUTO_ORDER if backend == "auto" else (backend,)
    for name in backends:
        try:
            clip = _BACKENDS[name](path, spec, threads, _guarded(keep))
        except VideoError as exc:
            failures.append(f"{name}: {exc}")
            reasons.append(str(exc))
            continue
        if failures:
            clip.notes.append(f"decoded with {clip.backend} (" + "; ".join(failures) + ")")
        return clip
    plain = next((r for r in reasons if r in _PLAIN), None)
    raise VideoError(diagnose(path) or plain or "not a readable video (" + "; ".join(failures) + ")")


def _guarded(keep: Callable[[np.ndarray], Any] | None) -> Callable[[np.ndarray], Any]:
    if keep is None:
        return lambda frame: frame

    def guarded(frame: np.ndarray) -> Any:
        try:
            return keep(frame)
        except Exception as exc:
            raise KeepError(f"{type(exc).__name__}: {exc}") from exc

    return guarded


def check_container(path: str | Path) -> None:
    """Raise VideoError unless the file is a video container dfscan reads, within the limits.

    Runs before any decoder: decord and OpenCV open files with FFmpeg options we cannot
    restrict, so they only get files that pass here.
    """
    path = str(path)
    not_video = _sniff(path)
    if not_video:  # decoders would read a lone image as a one-frame "video"
        raise VideoError(not_video)
    too_many = _count_mp4_boxes(path)
    if too_many:
        raise VideoError(too_many)
    try:
        import av
    except ImportError as exc:
        raise VideoError("PyAV is not installed: dfscan checks every file with it before decoding") from exc
    try:
        with _open_av(path) as container:
            _check_limits(container)
    except VideoError:
        raise
    except av.error.ArgumentError as exc:  # FFmpeg's answer to a format off the whitelist
        raise VideoError(diagnose(path) or _REFUSED_FORMAT) from exc
    except MemoryError as exc:  # the MP4 demuxer's answer to more streams than max_streams
        raise VideoError(f"FFmpeg could not open it: more than {MAX_STREAMS} streams (limit), "
                         "or not enough memory") from exc
    except Exception as exc:  # av.error.* and friends
        raise VideoError(diagnose(path) or _short(exc, path)) from exc


# While opening, FFmpeg probes every stream with its own decoder: 65 1080p H.264 streams took
# 600 MB that way. Our decoder is opened afterwards, on the one stream we read.
_PROBE_OPTIONS = {"threads": "1", "skip_frame": "all"}


def _open_av(path: str):
    import av

    # An absolute name: FFmpeg would read a relative "concat:a|b" or "subfile:x" as a protocol.
    return av.open(os.path.abspath(path), options=dict(_AV_OPTIONS),
                   stream_options=[dict(_PROBE_OPTIONS) for _ in range(MAX_STREAMS + 1)])


_REFUSED_FORMAT = "not a video container dfscan reads (FFmpeg sees another format: audio, image, playlist or script?)"


def _check_limits(container) -> None:
    streams = container.streams
    if len(streams) > MAX_STREAMS:
        raise VideoError(f"more than {MAX_STREAMS} streams in the file: more than a real video holds (limit)")
    if not streams.video:
        raise VideoError("no video stream in the file (audio only?)")
    codec = streams.video[0].codec_context
    width, height = int(codec.width or 0), int(codec.height or 0)
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(f"frames of {width}x{height} pixels: larger than 8K "
                         f"({MAX_FRAME_PIXELS / 1e6:.1f} Mpx, the limit dfscan reads)")


_MAGIC = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"),
          (b"PK\x03\x04", "a ZIP archive (or an office document)"),
          (b"ffconcat", "an FFmpeg concat script (a list of other files)"),
          (b"#EXTM3U", "an M3U/HLS playlist (a list of other files)"))


def _sniff(path: str) -> str | None:
    """'a JPEG image, not a video' and the like, from the first bytes; None when it may be a video."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16).removeprefix(b"\xef\xbb\xbf")  # a text editor's byte-order mark
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
    seen_moov = False
    for kind, _ in _mp4_boxes(fh, size):
        if kind == b"moov":
            seen_moov = True
        elif kind == b"!cut":
            return "the file is truncated (it ends in the middle of its data): an incomplete copy or download"
        elif kind == b"!many":
            return _too_many_boxes()
    if not seen_moov:
        return "the MP4 index (moov box) is missing: the file is truncated or was never finished"
    return None


def _too_many_boxes() -> str:
    return f"more than {MAX_MP4_BOXES:,} top-level MP4 boxes: not a file a camera or editor writes (limit)"


def _mp4_boxes(fh, size: int) -> Iterator[tuple[bytes, int]]:
    """(kind, length) of each top-level box, streamed; b"!cut" for a box past the end, b"!many" past the limit."""
    pos = count = 0
    while pos + 8 <= size:
        count += 1
        if count > MAX_MP4_BOXES:
            yield b"!many", 0
            return
        fh.seek(pos)
        header = fh.read(16)
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        if length == 1 and len(header) == 16:
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:
            length = size - pos
        if length < 8:
            return
        if pos + length > size:
            yield b"!cut", length
            return
        yield kind, length
        pos += length


def _count_mp4_boxes(path: str) -> str | None:
    """A reason to refuse an MP4/MOV file with more top-level boxes than the limit, before FFmpeg walks them all."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head[4:8] != b"ftyp":
                return None
            size = os.fstat(fh.fileno()).st_size
            if any(kind == b"!many" for kind, _ in _mp4_boxes(fh, size)):
                return _too_many_boxes()
    except OSError:
        return None
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


def _check_length(total: int) -> None:
    if total > MAX_FRAMES:
        raise VideoError(f"the stream claims {total:,} frames, more than dfscan reads ({MAX_FRAMES:,}, limit)")


def _read_decord(path: str, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
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
            h, w = frame.shape[:2]
            frames.append(keep(frame))
            del frame
    except (VideoError, KeepError):
        raise
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError
        raise VideoError(_short(exc, path)) from exc
    return Clip(frames, indices, total, fps, w, h, "decord")


def _read_opencv(path: str, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
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


def _read_pyav(path: str, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    """PyAV, decoding only what is needed: reference frames and the wanted frames.

    Non-reference frames (most B-frames) are needed by no other frame, so FFmpeg
    may skip them; the skip is switched off for the packets of the wanted frames,
    which therefore come out exactly as a full decode gives them. A frame's index
    is the rank of its timestamp, as for the other decoders, so variable frame
    rates are exact too.
    """
    try:
        import av  # noqa: F401
    except ImportError as exc:
        raise VideoError("PyAV is not installed") from exc
    try:
        with _open_av(path) as container:
            _check_limits(container)
            stream = container.streams.video[0]
            total, fps = int(stream.frames or 0), float(stream.average_rate or 0)
            if total <= 0:  # no count in the header (WebM, MKV): count the packets, without decoding
                total = len(_presentation_stamps(container, stream, None))
                container.seek(0)
            _check_length(total)
            indices = spec.resolve(total)
            if not indices:
                raise VideoError("the video has no frames")
            stamps = _presentation_stamps(container, stream, indices[-1])
            ranks = {int(stamps[i]): i for i in indices if i < len(stamps)}  # only the wanted frames' stamps
            del stamps
        with _open_av(path) as container:
            frames, size = _pyav_frames(container, container.streams.video[0], indices, ranks, threads, keep)
    except (VideoError, KeepError):
        raise
    except Exception as exc:  # av.error.* and friends
        raise VideoError(_short(exc, path)) from exc
    if len(frames) != len(indices):
        missing = sorted(set(indices) - set(frames))
        raise VideoError(f"frames {missing[:5]} could not be decoded")
    return Clip([frames[i] for i in indices], indices, total, fps, *size, "pyav")


_REORDER_SLACK = 64  # packets read past the last wanted frame: more than any B-frame reordering depth


def _presentation_stamps(container, stream, last: int | None) -> np.ndarray:
    """The stream's distinct timestamps in presentation order (frame index -> timestamp), demuxing without decoding.

    Reads up to `last` + a reordering slack packets; all of them (at most MAX_FRAMES + 1) when `last` is None.
    """
    from array import array

    stamps = array("q")  # 8 bytes a packet: a long clip's list of ints would take ~5x more
    limit = MAX_FRAMES + 1 if last is None else last + _REORDER_SLACK + 1
    for packet in container.demux(stream):
        if packet.pts is not None:
            stamps.append(packet.pts)
            if len(stamps) >= limit:
                break
    return np.unique(np.frombuffer(stamps, dtype=np.int64)) if stamps else np.empty(0, np.int64)


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
    for packet in container.demux(stream):
        if packet.pts is not None:
            walked += 1
            codec.skip_frame = "DEFAULT" if packet.pts in ranks else "NONREF"
        take(codec.decode(packet))
        if len(got) == len(ranks):
            break
        if walked >= limit:
            take(codec.decode(None))
            break
    return got, tuple(size)


_BACKENDS = {"decord": _read_decord, "opencv": _read_opencv, "pyav": _read_pyav}
