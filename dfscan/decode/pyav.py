"""PyAV, decoding only what is needed: reference frames and the wanted frames.

Non-reference frames (most B-frames) are needed by no other frame, so FFmpeg may skip
them; the skip is switched off for the packets of the wanted frames, which therefore come
out exactly as a full decode gives them. A frame's index is the rank of its timestamp, as
for the other decoders, so variable frame rates are exact too. Reads the container
open_checked opened (no second open), and the stream streams.choose picked.

Edit lists: FFmpeg marks the packets an MP4 edit list hides (a lossless trim keeps them back
to the previous keyframe) as discarded, and its decoder drops their frames. They are left out
of the count and the ranks too, so frame 0 is the first frame a player shows.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..common.errors import VideoError
from . import container as checks
from . import frames as limits
from .container import decoder_message, frame_too_large, refused_size
from .frames import Clip, FrameSpec, KeepError, UnorderedStamps, check_length


def read_pyav(source, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    container = source.container
    try:
        stream = source.stream
        total, fps = int(stream.frames or 0), float(stream.average_rate or 0)
        if total <= 0 or source.hidden:  # no count in the header (WebM, MKV, MPEG-PS), or an edit hides some
            total = _count_stamps(source, stream)
            container.seek(0)
        check_length(total)
        indices = spec.resolve(total)
        if not indices:
            raise VideoError("the video has no frames")
        stamps = presentation_stamps(container, stream, indices[-1])[0]
        ranks = {int(stamps[i]): i for i in indices if i < len(stamps)}  # only the wanted frames' stamps
        del stamps
        container.seek(0)  # back to the first packet: the decoding pass
        got, size = _pyav_frames(container, stream, indices, ranks, threads, keep)
    except (VideoError, KeepError):
        raise
    except Exception as exc:  # av.error.* and friends
        raise VideoError(decoder_message(exc, source.path)) from exc
    if len(got) != len(indices):
        missing = sorted(set(indices) - set(got))
        raise VideoError(f"frames {missing[:5]} could not be decoded")
    return Clip([got[i] for i in indices], indices, total, fps, *size, "pyav")


def _count_stamps(source, stream) -> int:
    """The number of frames, from the packets' timestamps; VideoError when those cannot tell frames apart."""
    stamps, stamped, packets = presentation_stamps(source.container, stream, None)
    if not stamped:  # FFmpeg cannot seek back in these either ("Operation not permitted")
        source.packets = packets  # a raw stream's parser cuts one packet per frame: OpenCV need not count
        raise UnorderedStamps("no timestamps in the stream (a raw H.264/HEVC stream?): OpenCV reads it in order")
    if len(stamps) < stamped:  # MPEG-PS: frames packed together get guessed stamps, and B-frames collide
        raise UnorderedStamps(f"{stamped - len(stamps)} frames share a timestamp with another: "
                              "OpenCV reads it in order")
    return len(stamps)


_REORDER_SLACK = 64  # packets read past the last wanted frame: more than any B-frame reordering depth


def presentation_stamps(container, stream, last: int | None) -> tuple[np.ndarray, int, int]:
    """The shown frames' distinct timestamps in presentation order (frame index -> timestamp), demuxing without
    decoding; the number of stamped shown packets; the number of packets. Reads up to `last` + a reordering
    slack shown packets; all of them (at most MAX_FRAMES + 1) when `last` is None."""
    from array import array

    stamps = array("q")  # 8 bytes a packet: a long clip's list of ints would take ~5x more
    limit = limits.MAX_FRAMES + 1 if last is None else last + _REORDER_SLACK + 1
    packets = 0
    for packet in container.demux(stream):
        if packet.size:
            packets += 1
            if packets > limits.MAX_FRAMES + 1:  # enough to tell that the stream is past the limit
                break
        if packet.pts is not None and not packet.is_discard:
            stamps.append(packet.pts)
            if len(stamps) >= limit:
                break
    unique = np.unique(np.frombuffer(stamps, dtype=np.int64)) if stamps else np.empty(0, np.int64)
    return unique, len(stamps), packets


def _pyav_frames(container, stream, indices: tuple[int, ...], ranks: dict[int, int], threads: int,
                 keep: Callable[[np.ndarray], Any]) -> tuple[dict[int, Any], tuple[int, int]]:
    got, size = {}, [0, 0]
    stream.thread_type = "AUTO"
    codec = stream.codec_context
    codec.thread_count = threads
    codec.options = {"max_pixels": str(checks.MAX_FRAME_PIXELS)}  # a size change mid-stream is refused too

    def take(frames) -> None:
        for frame in frames:
            index = ranks.get(frame.pts)
            if index is not None and index not in got:
                rgb = frame.to_ndarray(format="rgb24")
                size[:] = rgb.shape[1], rgb.shape[0]
                got[index] = keep(rgb)

    # The wanted frames' packets lie among the first ones (see presentation_stamps): past them,
    # flush the decoder's delayed frames instead of walking the rest of the file.
    walked, limit = 0, indices[-1] + _REORDER_SLACK + 1
    for seen, packet in enumerate(container.demux(stream)):
        if packet.pts is not None:
            shown = not packet.is_discard  # a hidden packet is decoded only as a reference
            walked += shown
            codec.skip_frame = "DEFAULT" if shown and packet.pts in ranks else "NONREF"
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
