"""One file decoded in this process: checked and opened once, its stream chosen, the decoders tried in turn.

PyAV is tried first: it decodes only the reference frames and the wanted ones, about twice as
fast as a full decode on long-GOP 1080p clips (bench/). A clip it cannot read goes to decord
(where decord is safe, decord_reader.py), then to OpenCV, read sequentially. All three give the
same frames of the same stream for the same indices (tests/test_video.py, test_decode_hostile.py).

Every file is untrusted: an MP4's sample tables are checked against the frame limit before FFmpeg
opens it (mp4.py), then container.open_checked opens it with PyAV, restricted and within limits.
decord and OpenCV, which cannot be restricted that way, only ever get files that passed, after
the PyAV container is closed (never two demuxers' indexes of one file at once). Once a limit is
hit (LimitExceeded), no other decoder is tried.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..common.constants import AUTO_ORDER
from ..common.errors import VideoError
from . import container as checks
from . import decord_reader, frames, mp4
from .container import PLAIN_REASONS, LimitExceeded, check_frame_sizes, diagnose, open_checked
from .decord_reader import read_decord
from .frames import Clip, FrameSpec, KeepError, UnorderedStamps
from .opencv import read_opencv
from .pyav import read_pyav
from .streams import Choice, choose

log = logging.getLogger(__name__)

_BACKENDS = {"decord": read_decord, "opencv": read_opencv, "pyav": read_pyav}
_ORDERS_BY_STAMPS = ("decord",)  # seeks by the same timestamps PyAV reads: MPEG-PS frames came out shuffled
STREAM_COPY_PREFIX = "dfscan-stream-"  # + the decoding process's id: worker.py sweeps a killed worker's copies


@dataclass
class Source:
    """A file that passed the checks: its absolute path, the PyAV container open on it, the stream judged."""

    path: str
    container: Any
    choice: Choice
    format_name: str = ""
    hidden: int = 0  # packets an MP4 edit list hides before the first frame a player shows
    packets: int = 0  # frames counted from a raw stream's packets (pyav.py), for OpenCV
    single: str | None = None  # a copy holding the chosen stream alone, for decord and OpenCV

    @property
    def stream(self):
        return self.container.streams[self.choice.index]

    def decoder_path(self) -> str:
        """The file decord and OpenCV open: this one, or a copy of the chosen stream alone when there are
        several video streams (they would pick one of their own)."""
        if self.choice.videos == 1:
            return self.path
        if self.single is None:
            self.single = _copy_stream(self)
        return self.single


def read_frames(path: str, spec: FrameSpec, backend: str = "auto", threads: int = 0,
                keep: Callable[[np.ndarray], Any] | None = None, inspect: Callable[[Any], Any] | None = None,
                on_size: Callable[[int, int], None] | None = None) -> Clip:
    """See video.read_frames; this is its in-process part. `on_size` hears the chosen stream's frame size."""
    path = os.path.abspath(path)  # FFmpeg, in all three decoders, would read "subfile:x.mp4" as a protocol
    refused = mp4.check_samples(path, frames.MAX_FRAMES)  # before FFmpeg builds an index of every sample
    if refused:
        raise LimitExceeded(refused)
    container = open_checked(path)  # opened and checked once: PyAV decodes from it, the others get the path
    source = Source(path, container, choose(container), container.format.name)
    try:
        if on_size:
            on_size(int(source.stream.codec_context.width or 0), int(source.stream.codec_context.height or 0))
        facts = inspect(container) if inspect else None
        if inspect and not _rewind(container):  # a raw stream cannot seek back, and a failed seek ends it
            container.close()
            source.container = open_checked(path)
        source.hidden = _hidden(source)
        clip = _decode(source, spec, backend, threads, keep)
    finally:
        source.container.close()
        if source.single:
            os.unlink(source.single)
    if source.choice.note:
        clip.notes.insert(0, source.choice.note)
    clip.facts = facts
    return clip


def _decode(source: Source, spec: FrameSpec, backend: str, threads: int,
            keep: Callable[[np.ndarray], Any] | None) -> Clip:
    """Try the decoders in turn; the first that reads the clip gives it, with notes on those that failed."""
    failures, reasons = [], []
    backends = AUTO_ORDER if backend == "auto" else (backend,)
    unordered = handed_over = False
    for name in backends:
        if unordered and backend == "auto" and name in _ORDERS_BY_STAMPS:
            failures.append(f"{name}: not tried, it orders frames by the same timestamps")
            continue
        if name != "pyav" and not handed_over:  # decord and OpenCV decode frames of any size: check first
            _hand_over(source, rewind=bool(failures))
            handed_over = True
        why = decord_reader.unsafe(source) if name == "decord" else None
        if why and backend == "auto":
            failures.append(f"decord: not tried, {why}")
            continue
        if why:
            raise VideoError(f"decord is not used on this file ({why}): use --decoder auto, pyav or opencv")
        try:
            clip = _BACKENDS[name](source, spec, threads, _guarded(keep))
        except LimitExceeded:
            raise  # past a limit: no other decoder may read the file
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


def _rewind(container) -> bool:
    try:
        container.seek(0)
        return True
    except Exception:  # raw H.264/HEVC streams cannot seek back (nothing was read from them)
        return False


def _hidden(source: Source) -> int:
    """Packets an MP4 edit list hides before the first shown frame (FFmpeg marks them discarded)."""
    if not source.format_name.startswith("mov") or not any(t.start > 0 for t in mp4.tracks(source.path)):
        return 0  # most B-frame MP4s start a little late too: only the packets tell what is hidden
    hidden = 0
    for packet in source.container.demux(source.stream):
        if packet.size and not packet.is_discard:
            break
        hidden += bool(packet.size)
        if hidden > frames.MAX_FRAMES:
            break
    _rewind(source.container)
    return hidden


def _hand_over(source: Source, rewind: bool) -> None:
    """Before decord or OpenCV: the frame sizes checked from the first packet, the chosen stream copied
    alone when needed, and the PyAV container closed (its index is not held while another demuxer's is built)."""
    container = source.container
    if rewind and not _rewind(container):  # a raw stream PyAV read some of: open it again for the check
        with open_checked(source.path) as again:
            check_frame_sizes(again, frames.MAX_FRAMES + 1, again.streams[source.choice.index])
    else:
        check_frame_sizes(container, frames.MAX_FRAMES + 1, source.stream)
    source.decoder_path()
    container.close()


def _copy_stream(source: Source) -> str:
    """The chosen video stream alone, its packets copied (not decoded) into an MP4 file.

    Read from a second open in which only that stream gets FFmpeg's probing decoder (one stream, checked
    within the limits): without it, a Matroska file's decode timestamps are guessed wrong for B-frames."""
    import av

    fd, copy = tempfile.mkstemp(prefix=f"{STREAM_COPY_PREFIX}{os.getpid()}-", suffix=".mp4")
    os.close(fd)
    index = source.choice.index
    options = [{"threads": "1"} if i == index else dict(checks._PROBE_OPTIONS) for i in range(checks.MAX_STREAMS + 1)]
    try:
        with av.open(source.path, options=dict(checks._AV_OPTIONS), stream_options=options) as original, \
                av.open(copy, "w", format="mp4") as out:
            target = out.add_stream_from_template(original.streams[index])
            for packet in original.demux(original.streams[index]):
                if packet.size:  # not the demuxer's end-of-stream packet
                    packet.stream = target
                    out.mux(packet)
    except Exception as exc:
        os.unlink(copy)
        raise VideoError(f"cannot copy video stream {index} for the decoder: "
                         f"{checks.decoder_message(exc, source.path)}") from exc
    return copy
