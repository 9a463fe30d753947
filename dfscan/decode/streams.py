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
    moving = [s for s in videos if not _still(s)] or videos
    marked = [s for s in moving if _flag(s, "default")]
    chosen = max(marked or moving, key=_size)
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


def _frames(stream) -> int:
    """Frames the stream holds, from its header, else its duration and rate (0 when neither says)."""
    if stream.frames:
        return int(stream.frames)
    try:
        return int(float(stream.duration * stream.time_base) * float(stream.average_rate))
    except (TypeError, ValueError, ZeroDivisionError):
        return 0


def _still(stream) -> bool:
    return _flag(stream, "attached_pic") or _flag(stream, "still_image") or _frames(stream) == 1


def _size(stream) -> tuple[int, int]:
    pixels = int(stream.codec_context.width or 0) * int(stream.codec_context.height or 0)
    return pixels * max(1, _frames(stream)), pixels


def _describe(stream) -> str:
    codec = stream.codec_context
    return f"{codec.width}x{codec.height}"
