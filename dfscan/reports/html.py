"""The HTML evidence report: one self-contained file (inline CSS, images and script; no network).

Every string that comes from a file name or a decoder is escaped, and a Content
Security Policy allows only this file's own script (by hash) and inline images.
"""
from __future__ import annotations

import base64
import hashlib
from functools import partial
from html import escape

from ..common.text import local_time, printable, utf8_text
from ..queue.cells import queue_html
from ..results import ScanReport, Verdict, VideoResult
from ..sources.report import shown_path, sources_html
from ..verdicts.people_html import CSS as PEOPLE_CSS
from ..verdicts.people_html import people_html
from .text import CAVEAT, flat_note, suspicion_order

_when = partial(local_time, seconds=True)  # a scan's time in the report, with seconds and the zone

COLOURS = {Verdict.FAKE: "#c62828", Verdict.UNCERTAIN: "#e65100", Verdict.REAL: "#2e7d32", Verdict.NO_FACE: "#b28704", Verdict.ERROR: "#6a1b9a"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1c1c1c;background:#fafafa}
header{background:#1f2937;color:#f9fafb;padding:18px 28px}header h1{margin:0 0 6px;font-size:22px}
header .meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px;opacity:.9}
main{padding:18px 28px}.counts{display:flex;gap:10px;margin:0 0 14px}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.counts .badge{font-size:14px;padding:6px 14px;cursor:pointer;border:2px solid transparent}
.counts .badge.active{border-color:#111}
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:6px 8px;border-bottom:1px solid #e5e7eb;
text-align:left;vertical-align:top}th{cursor:pointer;user-select:none;background:#f3f4f6;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.path{word-break:break-all}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:18px 0;padding:14px 18px}
.card h3{margin:0 0 8px;font-size:15px;word-break:break-all}.facts{font-size:12px;color:#444;margin:4px 0 10px}
.facts code{font-size:11px}.thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumbs figure{margin:0;text-align:center;
font-size:11px}.thumbs img{width:96px;height:96px;object-fit:cover;border:3px solid #ddd;border-radius:4px}
.thumbs figure.worst img{border-color:#c62828}.explain{margin-top:10px;font-size:12px}
.explain img{width:224px;border-radius:4px}.note{color:#666;font-size:12px}input#q{padding:5px 8px;width:260px}
.disclaimer{font-size:12px;color:#555;margin:4px 0 14px}
.flat{background:#fff4d6;border:1px solid #b28704;border-radius:6px;padding:8px 12px}
"""

SCRIPT = """
(function(){
  var rows=[].slice.call(document.querySelectorAll('#results tbody tr'));
  var cards=[].slice.call(document.querySelectorAll('.card'));
  var verdict='ALL', query='';
  function apply(){
    rows.forEach(function(r){var ok=(verdict==='ALL'||r.dataset.verdict===verdict)&&
      r.dataset.path.toLowerCase().indexOf(query)>=0;r.style.display=ok?'':'none';});
    cards.forEach(function(c){var ok=(verdict==='ALL'||c.dataset.verdict===verdict)&&
      c.dataset.path.toLowerCase().indexOf(query)>=0;c.style.display=ok?'':'none';});
    [].forEach.call(document.querySelectorAll('.counts .badge'),function(b){
      b.classList.toggle('active',b.dataset.verdict===verdict);});
  }
  [].forEach.call(document.querySelectorAll('.counts .badge'),function(b){
    b.addEventListener('click',function(){verdict=(verdict===b.dataset.verdict)?'ALL':b.dataset.verdict;apply();});});
  document.getElementById('q').addEventListener('input',function(e){query=e.target.value.toLowerCase();apply();});
  [].forEach.call(document.querySelectorAll('#results th'),function(th,i){
    th.addEventListener('click',function(){
      var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';var tb=document.querySelector('#results tbody');
      rows.sort(function(a,b){var x=a.children[i].dataset.sort,y=b.children[i].dataset.sort;
        var nx=parseFloat(x),ny=parseFloat(y);var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);
        return asc?c:-c;});
      rows.forEach(function(r){tb.appendChild(r);});});});
})();
"""


def render_html(report: ScanReport) -> str:
    """The whole report as one HTML string."""
    ordered = suspicion_order(report.results)
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>dfscan report {escape(_when(report.started_at))}</title><style>{CSS}{PEOPLE_CSS}</style></head><body>",
        _header(report),
        "<main>",
        _counts(report),
        f"<p class='disclaimer'>{escape(CAVEAT)} Scores come from a classifier of face crops with limited accuracy "
        "(see the model's card).</p>",
        *([f"<p class='flat'><b>Warning:</b> {escape(note)}.</p>"] if (note := flat_note(report)) else []),
        "<p><input id='q' type='search' placeholder='filter by path'></p>",
        _table(ordered, report),
        "".join(_card(i, r) for i, r in enumerate(ordered)),
        f"</main><script>{SCRIPT}</script></body></html>",
    ]
    return "".join(parts)


def _header(report: ScanReport) -> str:
    n = len(report.results)
    rate = n / report.elapsed_s if report.elapsed_s > 0 else 0.0
    s = report.settings
    settings = "; ".join(f"{k.replace('_', ' ')}: {_short_setting(v)}" for k, v in s.items()
                         if v is not None) if s else "-"
    rows = [
        ("scanned", _when(report.started_at)),
        ("folders / files", "; ".join(printable(p) for p in report.paths) or "-"),
        ("model", report.model),
        ("device", report.device),
        ("settings that change scores", settings),
        ("time", f"{n} video{'' if n == 1 else 's'} in {report.elapsed_s:.1f} s ({rate:.2f} videos/s); "
                 f"{sum(r.cached for r in report.results)} reused from the result store of earlier scans"),
    ]
    meta = "".join(f"<b>{escape(k)}</b><span>{escape(v)}</span>" for k, v in rows)
    return f"<header><h1>dfscan report</h1><div class='meta'>{meta}</div></header>"


def _short_setting(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_short_setting(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        items = [str(v) for v in value]
        return " ".join(items) if len(items) <= 4 else f"{items[0]} {items[1]} … {items[-1]}"
    return str(value)


def _badge(v: Verdict, extra: str = "") -> str:
    return f"<span class='badge' style='background:{COLOURS[v]}' data-verdict='{v.value}'>{v.value}{extra}</span>"


def _counts(report: ScanReport) -> str:
    counts = report.counts()
    return "<div class='counts'>" + "".join(_badge(v, f": {counts[v]}") for v in Verdict) + "</div>"


def _table(results: list[VideoResult], report: ScanReport) -> str:
    head = ("#", "Verdict", "Score", "Faces", "Frames with a face", "People", "Duration", "Resolution", "Video",
            "Reason / notes")
    body = []
    for i, r in enumerate(results):
        path = printable(shown_path(r))
        cells = [
            (str(i + 1), str(i), "num"),
            (_badge(r.verdict), r.verdict.value, ""),
            (_fmt(r.score), _fmt(r.score, -1.0), "num"),
            (str(r.faces_scored) if r.frames else "", str(r.faces_scored), "num"),
            (f"{r.frames_with_face}/{len(r.frames)}" if r.frames else "", str(r.frames_with_face), "num"),
            (str(len(r.counted_people)) if r.frames else "", str(len(r.counted_people)), "num"),
            (f"{r.duration_s:.1f} s" if r.duration_s else "", str(r.duration_s or 0), "num"),
            (f"{r.width}×{r.height}" if r.width else "", str((r.width or 0) * (r.height or 0)), "num"),
            (f"<a href='#v{i}'>{escape(path)}</a>", path, "path"),
            (escape(utf8_text(r.error or "; ".join(r.notes))) + _reused(r), r.error or "", ""),  # noqa: E501
        ]
        tds = "".join(f"<td class='{cls}' data-sort=\"{escape(key)}\">{html}</td>" for html, key, cls in cells)
        body.append(f"<tr data-verdict='{r.verdict.value}' data-path=\"{escape(path)}\">{tds}</tr>")
    ths = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table id='results'><thead><tr>{ths}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _reused(r: VideoResult) -> str:
    if not r.cached:
        return ""
    when = f" (scanned {escape(_when(r.scanned_at))})" if r.scanned_at else ""
    return f"<span class='note'> reused{when}</span>"


def _fmt(score: float | None, missing: float | None = None) -> str:
    if score is None:
        return "" if missing is None else str(missing)
    return f"{score:.3f}"


def _card(i: int, r: VideoResult) -> str:
    path = printable(shown_path(r))
    facts = [f"verdict {_badge(r.verdict)}"]
    if r.score is not None:
        band = f", uncertain {r.uncertain[0]:g}–{r.uncertain[1]:g}" if r.uncertain else ""
        facts.append(f"score <b>{r.score:.3f}</b> (threshold {r.threshold:g}{band})")
    if r.width:
        facts.append(f"{r.width}×{r.height}, {r.fps or 0:.2f} fps, {r.duration_s or 0:.1f} s")
    if r.frames:
        facts.append(f"frames {escape(' '.join(map(str, r.frames)))}")
        if r.covered_s is not None and r.duration_s:
            facts.append(f"covering {r.covered_s:.1f} s of {r.duration_s:.1f} s")
    facts.append(f"SHA-256 <code>{escape(r.sha256 or '-')}</code>")
    if r.cached:
        facts.append(f"reused from the result store (scanned {escape(_when(r.scanned_at))})" if r.scanned_at
                     else "reused from the result store")
    out = [f"<section class='card' id='v{i}' data-verdict='{r.verdict.value}' data-path=\"{escape(path)}\">",
           f"<h3>{escape(path)}</h3><div class='facts'>{' · '.join(facts)}</div>"]
    if r.error:
        out.append(f"<p><b>Why:</b> {escape(utf8_text(r.error))}</p>")
    if r.notes:
        out.append(f"<p class='note'>{escape(utf8_text('; '.join(r.notes)))}</p>")
    out.append(sources_html(r))  # link, content credentials, container facts (dfscan/sources)
    out.append(queue_html(r))  # a person's label, a seen-before match (dfscan/queue)
    if r.faces:  # the crops in one row per person, with a time strip (dfscan/verdicts); all in one row for old results
        if not r.people or not any(f.thumbnail for f in r.faces):
            out.append(_thumbs(r))
        out.append(people_html(r, COLOURS))
        out.append(_plot(r))
    if r.explanation:
        from ..classifier.explain import describe, method  # the method that drew it: Grad-CAM or occlusion sensitivity
        out.append(f"<div class='explain'><img alt='{method(r.explanation)} heatmap' src='data:image/jpeg;base64,"
                   f"{base64.b64encode(r.explanation).decode()}'><br>{describe(r.explanation)} "
                   "It shows what the network reacted to, not proof of a manipulation.</div>")
    out.append("</section>")
    return "".join(out)


def _thumbs(r: VideoResult) -> str:
    if not any(f.thumbnail for f in r.faces):
        return ("<p class='note'>No face crops for this video: its result was reused from the result store, "
                "which keeps no face images, and they could not be recomputed here (a note above may say why; "
                "--rescan computes everything again).</p>")
    worst = max(range(len(r.faces)), key=lambda k: r.faces[k].score)
    figs = []
    for k, f in enumerate(r.faces):
        if not f.thumbnail:
            continue
        src = base64.b64encode(f.thumbnail).decode()
        cls = " class='worst'" if k == worst else ""
        figs.append(f"<figure{cls}><img alt='face, frame {f.frame}' src='data:image/jpeg;base64,{src}'>"
                    f"<figcaption>frame {f.frame} · {f.score:.3f}</figcaption></figure>")
    return "<div class='thumbs'>" + "".join(figs) + "</div>"


def _plot(r: VideoResult, w: int = 360, h: int = 110, pad: int = 26) -> str:
    """An inline SVG: each face's score at its frame, against the threshold."""
    last = max(r.frames[-1] if r.frames else 1, 1)
    x = lambda frame: pad + (w - 2 * pad) * frame / last  # noqa: E731
    y = lambda score: h - pad + (2 * pad - h) * score  # noqa: E731
    ty = y(r.threshold)
    dots = "".join(
        f"<circle cx='{x(f.frame):.1f}' cy='{y(f.score):.1f}' r='4' fill='{'#c62828' if f.score > r.threshold else '#2e7d32'}'>"
        f"<title>frame {f.frame}: {f.score:.3f}</title></circle>" for f in r.faces)
    return (f"<svg width='{w}' height='{h}' role='img' aria-label='face score per frame'>"
            f"<rect x='{pad}' y='{pad}' width='{w - 2 * pad}' height='{h - 2 * pad}' fill='#f7f7f7' stroke='#ccc'/>"
            f"<line x1='{pad}' x2='{w - pad}' y1='{ty:.1f}' y2='{ty:.1f}' stroke='#999' stroke-dasharray='4 3'/>"
            f"<text x='{w - pad + 3}' y='{ty + 4:.1f}' font-size='10'>{r.threshold:g}</text>"
            f"<text x='{pad}' y='{h - 8}' font-size='10'>frame 0</text>"
            f"<text x='{w - pad}' y='{h - 8}' font-size='10' text-anchor='end'>frame {last}</text>"
            f"<text x='{pad}' y='{pad - 8}' font-size='10'>FAKE score per sampled frame</text>{dots}</svg>")
