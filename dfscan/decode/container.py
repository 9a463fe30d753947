"""Is this file a video we are willing to decode: its first bytes, its MP4 boxes, its container and limits.

Every file is untrusted. Before any decoder sees it, `open_checked` opens it with PyAV
restricted to the containers of real videos (no concat scripts or playlists, which make
FFmpeg open other files: one that lists itself exhausts the file handles and crashes
decord) and to local files, and refuses what exceeds the limits below. decord and OpenCV,
which cannot be restricted that way, only ever get files that passed this check.
"""
from __future__ import annotations

import errno
import os
import re
from typing import Iterator

from ..common.errors import VideoError, first_line

# What real videos need, with room to spare; a file beyond a limit gets a clear ERROR row.
MAX_FRAME_PIXELS = 8192 * 4320  # DCI 8K (35.4 Mpx), the largest frames cameras record; 8K UHD is 7680x4320
MAX_STREAMS = 64  # video, audio, subtitle and data tracks together; broadcast MXF files carry ~20
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
# While opening, FFmpeg probes every stream with its own decoder: 65 1080p H.264 streams took
# 600 MB that way. Our decoder is opened afterwards, on the one stream we read.
_PROBE_OPTIONS = {"threads": "1", "skip_frame": "all"}
_LATE_STREAMS_MAGIC = (b"FLV", b"\x00\x00\x01\xba")  # FLV, an MPEG-PS pack header
_NO_CODEC = "dfscan-probes-without-decoders"  # the name of no FFmpeg codec
_REFUSED_FORMAT = "not a video container dfscan reads (FFmpeg sees another format: audio, image, playlist or script?)"


def open_checked(path: str):
    """The file opened with PyAV, restricted as above and within the limits; VideoError otherwise.

    Runs before any decoder: decord and OpenCV open files with FFmpeg options we cannot
    restrict, so they only get files that pass here. The caller closes the container.
    """
    refused = _sniff(path) or _count_mp4_boxes(path)  # decoders would read a lone image as a one-frame "video"
    if refused:
        raise VideoError(refused)
    try:
        import av
    except ImportError as exc:
        raise VideoError("PyAV is not installed: dfscan checks every file with it before decoding") from exc
    try:
        container = _open_av(path)
        try:
            _check_limits(container)
        except BaseException:
            container.close()
            raise
    except VideoError:
        raise
    except av.error.ArgumentError as exc:  # FFmpeg's answer to a format off the whitelist
        raise VideoError(diagnose(path) or _REFUSED_FORMAT) from exc
    except MemoryError as exc:  # the MP4 demuxer's answer to more streams than max_streams
        raise VideoError(f"FFmpeg could not open it: more than {MAX_STREAMS} streams (limit), "
                         "or not enough memory") from exc
    except Exception as exc:  # av.error.* and friends
        raise VideoError(diagnose(path) or decoder_message(exc, path)) from exc
    return container


def _open_av(path: str):
    import av

    path = os.path.abspath(path)  # FFmpeg would read a relative "concat:a|b" or "subfile:x" as a protocol
    if _head(path, 4).startswith(_LATE_STREAMS_MAGIC):  # older PyAV drops stream_options on these unannounced
        return _open_late_streams(path)
    try:
        return av.open(path, options=dict(_AV_OPTIONS),
                       stream_options=[dict(_PROBE_OPTIONS) for _ in range(MAX_STREAMS + 1)])
    except (ValueError, TypeError) as exc:
        # ValueError: PyAV 18 refuses stream_options where FFmpeg finds the streams while probing
        # (an MPEG-PS file not starting with a pack header); TypeError: a PyAV without stream_options.
        if "stream_options" not in str(exc):
            raise
    return _open_late_streams(path)


def _open_late_streams(path: str):
    """FLV and MPEG-PS: formats whose streams appear only while FFmpeg probes them (also used for
    every file by a PyAV that takes no stream_options).

    PyAV cannot hand those probing decoders _PROBE_OPTIONS nor max_pixels: a 16000x16000
    H.264 FLV took 620 MB just to open. So they are first opened with no decoder at all
    (a codec whitelist no codec is on): sizes and rates come from the parsers, and
    max_streams caps the count. Within the limits, a file with one video stream is opened
    again with FFmpeg's probing decoders (one stream of at most 8K), which MPEG-PS needs
    for the timestamps of frames its packets leave unstamped (B-frames in MPEG-1/2).
    """
    import av

    scout = av.open(path, options=dict(_AV_OPTIONS, codec_whitelist=_NO_CODEC))
    try:
        _check_limits(scout)
        codec = scout.streams.video[0].codec_context
        if not codec.width or not codec.height:  # e.g. Sorenson H.263 in FLV: only a decoder would tell
            raise VideoError("the frame size is not in the stream's headers (old Flash video?): "
                             "dfscan does not decode frames of unknown size")
        if len(scout.streams.video) != 1:
            return scout  # several video streams: never probed with decoders, the parsers' timestamps stand
    except BaseException:
        scout.close()
        raise
    scout.close()
    return av.open(path, options=dict(_AV_OPTIONS))


def _check_limits(container) -> None:
    streams = container.streams
    if len(streams) > MAX_STREAMS:
        raise VideoError(f"more than {MAX_STREAMS} streams in the file: more than a real video holds (limit)")
    if not streams.video:
        raise VideoError("no video stream in the file (audio only?)")
    for stream in streams.video:  # decord and OpenCV may pick another video stream than the first
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        if width * height > MAX_FRAME_PIXELS:
            raise VideoError(f"frames of {width}x{height} pixels: larger than 8K "
                             f"({MAX_FRAME_PIXELS / 1e6:.1f} Mpx, the limit dfscan reads)")


class LimitExceeded(VideoError):
    """The file is past one of dfscan's limits: no other decoder may read it (another would only
    spend the memory or time the limit is there to save)."""


class FrameTooLarge(LimitExceeded):
    """A frame over the size limit part-way through the stream: no other decoder may read the file."""


def frame_too_large(index: int, width: int = 0, height: int = 0) -> FrameTooLarge:
    size = f" ({width}x{height})" if width else ""
    return FrameTooLarge(f"a frame larger than the 8K limit at frame {index}{size}: the frames grow part-way "
                         f"through the stream ({MAX_FRAME_PIXELS / 1e6:.1f} Mpx, the limit dfscan reads)")


def refused_size(exc: BaseException) -> bool:
    """Is this how FFmpeg's decoder refuses a frame over max_pixels? It answers EINVAL, where a
    damaged frame gives AVERROR_INVALIDDATA or is concealed."""
    return getattr(exc, "errno", None) == errno.EINVAL


# Decoders that read each frame's size even when told to skip it (FFmpeg's SKIP_FRAME_FILL_PARAM):
# intra-only, so the size pass reads their headers instead of decoding every frame.
_SIZES_WITHOUT_DECODING = ("mjpeg",)


def check_frame_sizes(container, max_packets: int, stream=None) -> None:
    """FrameTooLarge if a frame of `stream` (default: the file's first video stream) exceeds MAX_FRAME_PIXELS.

    open_checked sees only the first frames' size; PyAV's decoder keeps the limit, decord and
    OpenCV do not (a 16000x16000 frame past small ones took 4.7 GB in OpenCV). So before either
    gets a file, its keyframes are decoded here with the limit: H.264, HEVC and MPEG change size
    only at a keyframe, where the new parameters take effect. Reads `container` (open_checked's) from
    where it stands. Runs only before decord or OpenCV.
    """
    import av

    stream = stream or container.streams.video[0]
    try:
        codec = av.CodecContext.create(stream.codec_context.name, "r")  # PyAV may have used the stream's own
    except Exception:  # PyAV's FFmpeg has no decoder for it: only video._check_size holds, frame by frame
        return
    codec.extradata = stream.codec_context.extradata
    codec.thread_count = 1
    codec.skip_frame = "ALL" if codec.name in _SIZES_WITHOUT_DECODING else "NONKEY"
    codec.options = {"max_pixels": str(MAX_FRAME_PIXELS)}
    try:
        for index, packet in enumerate(container.demux(stream)):
            if index >= max_packets:
                break
            try:
                codec.decode(packet)
            except av.error.FFmpegError as exc:
                if refused_size(exc):
                    raise frame_too_large(index) from exc
                continue  # a damaged packet: the other decoders may read past it
            if codec.width * codec.height > MAX_FRAME_PIXELS:
                raise frame_too_large(index, codec.width, codec.height)
    except av.error.FFmpegError:  # the file ends in damage: the other decoders' reads stop there too
        return


_MAGIC = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"),
          (b"PK\x03\x04", "a ZIP archive (or an office document)"),
          (b"ffconcat", "an FFmpeg concat script (a list of other files)"),
          (b"#EXTM3U", "an M3U/HLS playlist (a list of other files)"))


def _head(path: str, size: int) -> bytes:
    """The file's first bytes; none when it cannot be read (the decoder's open says why)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def _sniff(path: str) -> str | None:
    """'a JPEG image, not a video' and the like, from the first bytes; None when it may be a video."""
    head = _head(path, 16).removeprefix(b"\xef\xbb\xbf")  # a text editor's byte-order mark
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
PLAIN_REASONS = frozenset(plain for _, plain in _PLAIN_REASONS)  # what decoder_message makes of those messages
_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def decoder_message(exc: BaseException, path: str = "") -> str:
    """errors.first_line of a PyAV/FFmpeg/decord error, in words a journalist can act on: stack-trace lines and
    decord's source prefixes dropped, messages that mean nothing to a user (_PLAIN_REASONS) replaced by
    what they mean, the file's path (the report names the file) left out, cut to fit a report cell."""
    text = _DECORD_PREFIX.sub("", first_line(exc, skip=("Stack", "File")))
    for marker, plain in _PLAIN_REASONS:
        if marker in text:
            return plain
    if path:  # the report already names the file
        text = text.replace(f"ERROR opening: {path}, ", "cannot open: ").replace(f"[{path}] ", "")
        text = text.replace(path, "the file")
    return text if len(text) <= 160 else text[:157] + "..."
