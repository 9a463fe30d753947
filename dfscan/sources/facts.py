"""Container facts: what a video file says about itself, read from the PyAV container the decoder already
opened (no second open, no decoding): encoder and handler names, creation time, device make and model,
rotation, variable frame rate, audio and video durations that disagree, and a hint when the encoder is a
known editor, converter or generator's. Metadata is easily stripped or forged: these are leads, not proof.
"""
from __future__ import annotations

import math
import re
import struct
from typing import Any

MAX_STAMPS = 600  # video packets whose timestamps are read to tell a variable frame rate
_MAKE = ("com.apple.quicktime.make", "make", "com.android.manufacturer", "manufacturer")
_MODEL = ("com.apple.quicktime.model", "model", "com.android.model")
# Encoder or handler strings of tools that write a file anew (an editor, a converter, a platform, a generator).
_TOOLS = (("lavf", "FFmpeg (libavformat)"), ("lavc", "FFmpeg (libavcodec)"), ("handbrake", "HandBrake"),
          ("premiere", "Adobe Premiere"), ("adobe", "an Adobe tool"), ("davinci", "DaVinci Resolve"),
          ("final cut", "Final Cut"), ("imovie", "iMovie"), ("capcut", "CapCut"), ("kdenlive", "Kdenlive"),
          ("shotcut", "Shotcut"), ("openshot", "OpenShot"), ("camtasia", "Camtasia"), ("clipchamp", "Clipchamp"),
          ("inshot", "InShot"), ("vn video", "VN"), ("google", "Google (YouTube or Photos)"),
          ("runway", "Runway"), ("sora", "Sora"), ("pika", "Pika"), ("synthesia", "Synthesia"),
          ("heygen", "HeyGen"), ("videohandler", "FFmpeg (its default handler name)"),
          ("deepfacelab", "DeepFaceLab"), ("faceswap", "faceswap"))


def container_facts(container) -> dict[str, Any]:
    """The facts of an open PyAV container; never raises (a fact that cannot be read is left out)."""
    facts: dict[str, Any] = {}
    try:
        video = _judged(container)
        _tags(container, video, facts)
        facts["rotation"] = _rotation(container, video)
        facts["variable_frame_rate"] = _variable_rate(container, video)
        _durations(container, video, facts)
        facts["reencoding_hint"] = reencoding_hint(facts.get("encoder"), facts.get("video_encoder"),
                                                   facts.get("handler"))
    except Exception as exc:  # an odd container: what was read stands
        facts["unread"] = f"{type(exc).__name__}: {exc}"[:200]
    return {k: v for k, v in facts.items() if v is not None}


def _judged(container):
    """The video stream the decoders judge (the one a player shows: dfscan/decode/streams.py)."""
    from ..decode.streams import choose

    return container.streams[choose(container).index]


def _tags(container, video, facts: dict) -> None:
    tags = {k.lower(): str(v)[:200] for k, v in dict(container.metadata).items()}
    vtags = {k.lower(): str(v)[:200] for k, v in dict(video.metadata).items()}
    facts["format"] = container.format.name
    facts["encoder"] = tags.get("encoder") or tags.get("writing_application") or vtags.get("encoder")
    facts["video_encoder"] = vtags.get("encoder")
    facts["handler"] = vtags.get("handler_name")
    audio = container.streams.audio
    facts["audio_handler"] = dict(audio[0].metadata).get("handler_name") if audio else None
    facts["creation_time"] = tags.get("creation_time") or vtags.get("creation_time") or tags.get("date")
    facts["make"] = next((tags[k] for k in _MAKE if tags.get(k)), None)
    facts["model"] = next((tags[k] for k in _MODEL if tags.get(k)), None)
    facts["location"] = tags.get("location") or tags.get("com.apple.quicktime.location.iso6709")


def _rotation(container, video) -> int | None:
    """Degrees the picture is turned (counterclockwise) for display: the track header's matrix (MP4/MOV), else
    a 'rotate' tag."""
    tag = dict(video.metadata).get("rotate")
    if tag is not None:
        try:
            return int(float(tag)) % 360
        except ValueError:
            return None
    if container.format.name.split(",")[0] not in ("mov", "mp4"):
        return None
    matrix = _tkhd_matrix(container.name)
    if matrix is None:
        return None
    a, b = matrix
    return int(round(-math.degrees(math.atan2(b, a)))) % 360  # counterclockwise, as FFmpeg reports it


def _tkhd_matrix(path: str, limit: int = 4096) -> tuple[float, float] | None:
    """(a, b) of the first video track's display matrix, walking at most `limit` boxes of moov."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            moov = _find(fh, 0, size, b"moov", limit)
            for trak in _children(fh, moov, b"trak", limit) if moov else ():
                tkhd = _find(fh, trak[0], trak[1], b"tkhd", limit)
                if tkhd is None:
                    continue
                fh.seek(tkhd[0])
                body = fh.read(104)
                version = body[0]
                at = 4 + (32 if version == 1 else 20) + 8 + 8  # times, track id, duration; reserved; layer..volume
                a, b = struct.unpack(">ii", body[at:at + 8])
                width = struct.unpack(">I", body[at + 36:at + 40])[0] if len(body) >= at + 40 else 0
                if width:  # the video track (audio tracks have no width)
                    return a / 65536, b / 65536
    except (OSError, struct.error, IndexError):
        return None
    return None


def _boxes(fh, start: int, end: int, limit: int):
    pos = start
    for _ in range(limit):
        if pos + 8 > end:
            return
        fh.seek(pos)
        header = fh.read(16)
        length, kind, body = int.from_bytes(header[:4], "big"), header[4:8], 8
        if length == 1:
            length, body = int.from_bytes(header[8:16], "big"), 16
        elif length == 0:
            length = end - pos
        if length < body or pos + length > end:
            return
        yield kind, pos + body, pos + length
        pos += length


def _find(fh, start: int, end: int, kind: bytes, limit: int) -> tuple[int, int] | None:
    return next(((s, e) for k, s, e in _boxes(fh, start, end, limit) if k == kind), None)


def _children(fh, box: tuple[int, int], kind: bytes, limit: int):
    return [(s, e) for k, s, e in _boxes(fh, box[0], box[1], limit) if k == kind]


def _variable_rate(container, video) -> bool | None:
    """Do the first MAX_STAMPS frames' durations differ (more than rounding)? None when the stream has no
    timestamps or cannot be read again from the start."""
    try:
        container.seek(0)
        stamps = []
        for packet in container.demux(video):
            if packet.pts is not None:
                stamps.append(packet.pts)
                if len(stamps) >= MAX_STAMPS:
                    break
    except Exception:
        return None
    stamps = sorted(set(stamps))
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    if len(steps) < 3:
        return None
    steps.sort()
    low, high = steps[len(steps) // 20], steps[-1 - len(steps) // 20]  # 5% either side: a dropped frame is not VFR
    return high > low * 1.5 + 1


def _seconds(stream, container) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _durations(container, video, facts: dict) -> None:
    v = _seconds(video, container)
    audio = container.streams.audio
    a = _seconds(audio[0], container) if audio else None
    facts["video_duration_s"] = round(v, 3) if v is not None else None
    facts["audio_duration_s"] = round(a, 3) if a is not None else None
    if v is not None and a is not None:
        facts["durations_disagree"] = abs(v - a) > max(0.5, 0.05 * max(v, a))


def reencoding_hint(*names: str | None) -> str | None:
    """'written by HandBrake (encoder "HandBrake 1.6")' when a name is a known tool's; None otherwise."""
    for name in names:
        if not name:
            continue
        low = name.lower()
        for key, tool in _TOOLS:
            if re.search(rf"\b{re.escape(key)}", low):
                return f"written by {tool} (\"{name}\"): re-encoded or re-packaged after capture"
    return None
