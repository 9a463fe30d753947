"""People, not detections: who a video's faces belong to, who counts, and the verdict they give.

The faces of the sampled frames are linked into people (dfscan/verdicts/link.py). A person is
**weak** (kept in the JSON and the HTML, but deciding nothing) when

- seen in fewer than MIN_SHARE (15 %) of the sampled frames, or in fewer than MIN_FRAMES (2) of them
  (a scan of a single frame asks for that frame only),
- or their best detection's confidence is below MIN_CONFIDENCE (0.80),
- or their median face is smaller than MIN_SIZE (5 %) of the frame's shorter side.

Chosen on the dev clips (docs/verdicts.md has the numbers): every real face there is detected with a
confidence of 0.83 or more (median 0.89-0.95) and is 12 % of the shorter side or more, while the cockatoo
and the waving hands that YuNet mistakes for faces at `--num-frames 120` peak at 0.62 and 0.78.

A person's score is the scan's aggregate rule on their faces; their verdict follows the threshold
and the uncertain band. The video's score and verdict are those of its most suspicious counted
person; a video whose only people are weak is NO_FACE, with a note.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..results import Person, Verdict, VideoResult

if TYPE_CHECKING:
    from .band import Band

MIN_SHARE = 0.15
MIN_FRAMES = 2
MIN_CONFIDENCE = 0.80
MIN_SIZE = 0.05
# Part of the result store's key (ScanPlan.score_settings): results kept under an older rule are not reused.
RULE = "people v1: weak if <15% or <2 of the frames, best confidence <0.8, median face <5% of the short side"


def min_frames(sampled: int) -> int:
    """The sampled frames a person must be seen in to count (never more than were sampled)."""
    return min(sampled, max(MIN_FRAMES, math.ceil(MIN_SHARE * sampled - 1e-9)))


def weak_reason(frames: int, sampled: int, confidences: Sequence[float], sides: Sequence[float],
                short_side: int | None) -> str | None:
    """Why a person seen in `frames` of `sampled` frames, with these detection confidences and face
    sizes (the longer side of each box, in pixels), does not count; None: they count."""
    need = min_frames(max(sampled, frames))
    if frames < need:
        return f"seen in {frames} of {sampled} sampled frames (fewer than {need})"
    best = max(confidences, default=0.0)
    if best < MIN_CONFIDENCE:
        return f"unsure detections (best confidence {best:.2f} < {MIN_CONFIDENCE:.2f})"
    if short_side:
        size = float(np.median(sides)) / short_side
        if size < MIN_SIZE:
            return f"a small face ({size:.1%} of the frame's shorter side < {MIN_SIZE:.0%})"
    return None


def find_people(r: VideoResult, signatures: np.ndarray | None, rule: str) -> None:
    """Link `r.faces` into `r.people` (their verdicts are given by `judge`) and set `r.score` from the most
    suspicious counted person; a video with faces but no counted person becomes NO_FACE with a note."""
    from .aggregate import aggregate
    from .link import link

    position = {frame: k for k, frame in enumerate(r.frames)}
    tracks = link([position.get(f.frame, f.frame) for f in r.faces], [f.box for f in r.faces], signatures)
    short = min(r.width, r.height) if r.width and r.height else None
    sampled = len(r.frames) or len({f.frame for f in r.faces})
    people = []
    for number, members in enumerate(tracks, start=1):
        faces = [r.faces[i] for i in members]
        scores = tuple(f.score for f in faces)
        reason = weak_reason(len({f.frame for f in faces}), sampled, [f.confidence for f in faces],
                             [max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces], short)
        people.append(Person(
            number, tuple(f.frame for f in faces),
            tuple(round(f.frame / r.fps, 3) if r.fps else None for f in faces),
            tuple(f.box for f in faces), scores, aggregate(scores, rule), Verdict.ERROR,
            weak=reason is not None, weak_reason=reason, confidences=tuple(f.confidence for f in faces)))
    r.people = people
    counted = r.counted_people
    if counted:
        r.score = max(p.score for p in counted)
        return
    r.score, r.verdict = None, Verdict.NO_FACE
    r.notes += (f"no face counts: {_plural(len(r.faces), 'detection')} in {_plural(len(people), 'person')}, "
                "each seen too rarely, too small or with unsure detections (the people of the report say why)",)


def worst_face(r: VideoResult) -> int:
    """The index in `r.faces` of the most suspicious face of a person who counts (of any face when none counts)."""
    counted = {(frame, tuple(box)) for p in r.counted_people for frame, box in zip(p.frames, p.boxes)}
    pool = [i for i, f in enumerate(r.faces) if (f.frame, tuple(f.box)) in counted] or range(len(r.faces))
    return max(pool, key=lambda i: r.faces[i].score)


def judge(r: VideoResult, threshold: float, band: "Band | None") -> None:
    """Give each person, and the video (from its score), a verdict under this threshold and band."""
    from .aggregate import verdict

    r.people = [_with_verdict(p, verdict(p.score, threshold, band=band)) for p in r.people]
    if r.score is not None:
        r.verdict = verdict(r.score, threshold, band=band)


def _with_verdict(p: Person, v: Verdict) -> Person:
    from dataclasses import replace

    return p if p.verdict is v else replace(p, verdict=v)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {'people' if word == 'person' else word + 's'}"
