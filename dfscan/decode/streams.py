"""Which video stream of a file is judged: the one a player shows, for every decoder alike.

A file may carry several video streams: a small decoy first and the real video second, a
one-frame poster or cover art before the film. Players show the stream marked default, so
that is the one judged; when none (or several) are marked, the largest (pixels times frames).
Posters, cover art and one-frame streams are judged only when nothing else is there. The
report says when there were others (a note), so that a reader knows a choice was made.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    """The stream judged: its index among all the file's streams and among its video streams."""

    index: int
    video_index: int
    videos: int  # video streams in the file
    note: str | None = None


def choose(container) -> Choice:
    """The video stream a player shows (see the module's docstring); the first when there is one."""
    videos = list(container.streams.video)
    if len(videos) == 1:
        return Choice(videos[0].index, 0, 1)
    counts = _counted(container, videos)
    moving = [s for s in videos if not _still(s, counts)] or videos
    marked = [s for s in moving if _flag(s, "default")]
    chosen = max(marked or moving, key=lambda s: _size(s, counts))
    why = "marked default" if len(marked) == 1 else "the largest"
    note = (f"the file holds {len(videos)} video streams: judged stream {chosen.index} "
            f"({_describe(chosen)}, {why}), the one a player shows")
    return Choice(chosen.index, videos.index(chosen), len(videos), note)


def _flag(stream, name: str) -> bool:
    import av

    try:
        return bool(stream.disposition & getattr(av.stream.Disposition, name))
    except (AttributeError, TypeError):  # a PyAV without dispositions: every stream looks alike
        return False


_COUNTED_PACKETS = 10_000  # packets read to compare streams whose headers give no frame count (Matroska)


def _counted(container, videos) -> dict[int, int]:
    """Frames per video stream: the header's count (an MP4 sample table), else packets among the file's first
    ones, then rewound (Matroska gives every track the file's duration: a one-frame poster looked like a film)."""
    counts = {s.index: int(s.frames or 0) for s in videos}
    if all(counts.values()):
        return counts
    counts = dict.fromkeys(counts, 0)
    try:
        for n, packet in enumerate(container.demux(*videos)):
            if n >= _COUNTED_PACKETS:
                break
            counts[packet.stream.index] += bool(packet.size)
        container.seek(0)
    except Exception:  # cannot read or rewind: the sizes alone decide
        pass
    return counts


def _still(stream, counts: dict[int, int]) -> bool:
    return _flag(stream, "attached_pic") or _flag(stream, "still_image") or counts.get(stream.index) == 1


def _size(stream, counts: dict[int, int]) -> tuple[int, int]:
    pixels = int(stream.codec_context.width or 0) * int(stream.codec_context.height or 0)
    return pixels * max(1, counts.get(stream.index, 0)), pixels


def _describe(stream) -> str:
    codec = stream.codec_context
    return f"{codec.width}x{codec.height}"
