"""The HTML report's people: a time strip of the video marking where the suspicious faces are, and
one row of face crops per person with their score and verdict (weak people greyed, with the reason)."""
from __future__ import annotations

import base64
from html import escape

from ..results import Person, Verdict, VideoResult

CSS = """
.people{margin:10px 0 4px}.person{display:flex;gap:12px;align-items:flex-start;padding:8px 0;
border-top:1px solid #eee}.person .who{min-width:190px;font-size:12px}.person .who b{font-size:14px}
.person.weak{opacity:.55}.person .crops{display:flex;flex-wrap:wrap;gap:6px}.person figure{margin:0;
text-align:center;font-size:10px}.person img{width:72px;height:72px;object-fit:cover;border:3px solid #ddd;
border-radius:4px}.person figure.peak img{border-color:#c62828}.strip{display:block;margin:6px 0}
"""

_DOT = {Verdict.FAKE: "#c62828", Verdict.UNCERTAIN: "#e65100", Verdict.REAL: "#2e7d32"}
_WEAK = "#9e9e9e"


def people_html(r: VideoResult, colours: dict[Verdict, str]) -> str:
    """The people section of one video's card ('' when the video has no people); `colours`: the verdicts' badges."""
    if not r.people:
        return ""
    peak = _peak(r)
    rows = []
    for p in sorted(r.people, key=lambda p: (p.weak, -p.score)):
        badge = (f"<span class='badge' style='background:{colours[p.verdict]}'>{p.verdict.value}</span>"
                 if not p.weak else "<span class='badge' style='background:#9e9e9e'>WEAK</span>")
        span = _span(p)
        why = (f"<br>does not count: {escape(p.weak_reason or '')}" if p.weak else
               f"<br>counts{' (decides the verdict)' if peak and peak[0] is p else ''}")
        rows.append(f"<div class='person{' weak' if p.weak else ''}'><div class='who'><b>Person {p.person}</b> "
                    f"{badge}<br>score {p.score:.3f} · seen in {len(p.frames)}/{len(r.frames) or len(p.frames)} "
                    f"frames{span}{why}</div><div class='crops'>{_crops(r, p, peak)}</div></div>")
    look = (f"<p><b>Where to look:</b> person {peak[0].person} at {_when(peak[0], peak[1])}</p>"
            if peak else "")
    return f"<div class='people'>{look}{strip_svg(r, peak)}{''.join(rows)}</div>"


def _peak(r: VideoResult) -> tuple[Person, int] | None:
    """The counted person and the index of their most suspicious face."""
    best = None
    for p in r.counted_people:
        k = max(range(len(p.scores)), key=p.scores.__getitem__)
        if best is None or p.scores[k] > best[0].scores[best[1]]:
            best = (p, k)
    return best


def _when(p: Person, k: int) -> str:
    t = p.times[k] if k < len(p.times) else None
    return f"{t:.1f} s (frame {p.frames[k]})" if t is not None else f"frame {p.frames[k]}"


def _span(p: Person) -> str:
    times = [t for t in p.times if t is not None]
    if not times:
        return ""
    return f", {times[0]:.1f} s" if min(times) == max(times) else f", {min(times):.1f}–{max(times):.1f} s"


def _crops(r: VideoResult, p: Person, peak) -> str:
    thumbs = {(f.frame, tuple(f.box)): f.thumbnail for f in r.faces if f.thumbnail}
    figs = []
    for k, (frame, box, score) in enumerate(zip(p.frames, p.boxes, p.scores)):
        thumb = thumbs.get((frame, tuple(box)))
        img = (f"<img alt='person {p.person}, frame {frame}' src='data:image/jpeg;base64,"
               f"{base64.b64encode(thumb).decode()}'>" if thumb else "")
        cls = " class='peak'" if peak and peak[0] is p and peak[1] == k else ""
        figs.append(f"<figure{cls}>{img}<figcaption>{_when(p, k)}<br>{score:.3f}</figcaption></figure>")
    return "".join(figs)


MAX_LANES = 12  # people beyond share the last lane of the strip


def strip_svg(r: VideoResult, peak=None, w: int = 620) -> str:
    """The video as bars from its start to its end, one lane per person (counted people first, most suspicious
    on top): a tick per sampled frame, a dot per face (red FAKE, orange UNCERTAIN, green REAL, grey weak) and a
    triangle over the most suspicious counted face."""
    people = sorted(r.people, key=lambda p: (p.weak, -p.score))
    end = max([*r.frames, *(f for p in people for f in p.frames), 1])
    if r.fps and r.duration_s:
        end = max(end, int(r.duration_s * r.fps))
    x = lambda frame: 40 + (w - 48) * frame / end  # noqa: E731
    lanes = min(len(people), MAX_LANES)
    h = 16 + 14 * lanes
    parts = [f"<line x1='{x(f):.1f}' x2='{x(f):.1f}' y1='{h - 6}' y2='{h}' stroke='#bbb'/>" for f in r.frames]
    for lane, p in enumerate(people):
        y = 16 + 14 * min(lane, MAX_LANES - 1)
        if lane < MAX_LANES:
            parts.append(f"<text x='0' y='{y + 4}' font-size='10' fill='#555'>P{p.person}</text>"
                         f"<rect x='36' y='{y - 3}' width='{w - 40}' height='6' rx='3' fill='#eceff1'/>")
        for frame, score in zip(p.frames, p.scores):
            colour = _WEAK if p.weak else _dot_colour(score, r)
            parts.append(f"<circle cx='{x(frame):.1f}' cy='{y}' r='4' fill='{colour}'><title>person {p.person}, "
                         f"frame {frame}: {score:.3f}</title></circle>")
    if peak:
        px = x(peak[0].frames[peak[1]])
        parts.append(f"<path d='M{px - 5:.1f} 0 L{px + 5:.1f} 0 L{px:.1f} 8 Z' fill='#c62828'/>")
    return (f"<svg class='strip' width='{w}' height='{h}' role='img' aria-label='where the people are in the video'>"
            f"{''.join(parts)}</svg>")


def _dot_colour(score: float, r: VideoResult) -> str:
    if r.uncertain and r.uncertain[0] < score <= r.uncertain[1]:
        return _DOT[Verdict.UNCERTAIN]
    return _DOT[Verdict.FAKE] if score > r.threshold else _DOT[Verdict.REAL]
