"""The data model every stage and report shares: a verdict, the face scores behind it, one video's
result and a whole scan's report. Built once by the engine (or read back from the store) and only
read afterwards; nothing here imports the engine, so reports, the store, Ray and evaluate depend
on this module alone."""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Found:
    """A path to scan, or a path that could not be walked (then `error` says why)."""

    path: Path
    error: str | None = None
    origin: Any = None  # the fetch record of a link's file (dfscan.sources.links.Origin)


class Verdict(str, Enum):
    REAL = "REAL"
    FAKE = "FAKE"
    UNCERTAIN = "UNCERTAIN"  # the score lies in the model's uncertain band: a person must look
    NO_FACE = "NO_FACE"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FaceScore:
    frame: int
    score: float
    box: tuple[float, float, float, float]
    confidence: float
    thumbnail: bytes | None = None  # a small JPEG of the crop, kept for the HTML report


@dataclass(frozen=True)
class Person:
    """One person of a video: the faces of the sampled frames linked into a track (dfscan/verdicts/link.py).

    A `weak` person (seen too rarely, only small or only unsure detections: `weak_reason` says which) is
    kept for the reports but does not decide the video's verdict (dfscan/verdicts/people.py)."""

    person: int  # 1, 2, ... in order of first appearance
    frames: tuple[int, ...]
    times: tuple[float | None, ...]  # seconds into the video of each frame (None: the fps is unknown)
    boxes: tuple[tuple[float, float, float, float], ...]
    scores: tuple[float, ...]
    score: float  # the scan's aggregate rule on this person's face scores
    verdict: Verdict
    weak: bool = False
    weak_reason: str | None = None
    confidences: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "frames": list(self.frames), "times": list(self.times),
                "boxes": [list(b) for b in self.boxes], "scores": list(self.scores), "score": self.score,
                "verdict": self.verdict.value, "weak": self.weak, "weak_reason": self.weak_reason,
                "confidences": list(self.confidences)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Person":
        return cls(d["person"], tuple(d["frames"]), tuple(d["times"]), tuple(tuple(b) for b in d["boxes"]),
                   tuple(d["scores"]), d["score"], Verdict(d["verdict"]), d.get("weak", False),
                   d.get("weak_reason"), tuple(d.get("confidences") or ()))


@dataclass(slots=True)  # a scan keeps every result for its reports: 0.7 KB each instead of 2 KB with a __dict__
class VideoResult:
    """The verdict on one video and the evidence behind it."""

    path: Path
    verdict: Verdict
    score: float | None = None
    threshold: float = 0.5
    frames: tuple[int, ...] = ()
    frames_with_face: int = 0
    faces: list[FaceScore] = field(default_factory=list)
    duration_s: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    model: str = ""
    error: str | None = None
    decoder: str | None = None
    notes: tuple[str, ...] = ()
    cached: bool = False  # taken from the result store, not computed in this scan
    scanned_at: float | None = None  # when this result was computed (now, or by the scan that stored it)
    explanation: bytes | None = None  # JPEG: a heatmap over the most suspicious crop (--explain)
    uncertain: tuple[float, float] | None = None  # the uncertain band the verdict was given with (None: none)
    # Where the file came from (dfscan/sources): beside the model's score, never mixed into it.
    source_url: str | None = None  # the link it was fetched from
    final_url: str | None = None  # where that link led, after redirects
    extractor: str | None = None  # the yt-dlp extractor that fetched it
    fetched_at: str | None = None  # UTC, ISO 8601
    site: dict[str, Any] | None = None  # what the site said: title, uploader_id, upload_date
    provenance: str | None = None  # C2PA: none, valid, untrusted or invalid (None: not read)
    provenance_ai: bool | None = None  # the manifest declares generative AI (True) or a capture (False)
    provenance_issuer: str | None = None
    provenance_generator: str | None = None
    provenance_history: tuple[str, ...] = ()  # the manifest's actions and ingredients, in plain words
    provenance_reason: str | None = None  # why a credential is invalid
    facts: dict[str, Any] | None = None  # container facts: encoder, creation time, rotation, ...
    people: list[Person] = field(default_factory=list)  # the faces linked into people (dfscan/verdicts/people.py)
    # Moderation queues (dfscan/queue): never stored with the result, read from the store at each scan.
    seen_before: dict[str, Any] | None = None  # an earlier file whose fingerprint matches: sha256, path, verdict, ...
    human_label: str | None = None  # a person's decision (`dfscan label`): FAKE, REAL or UNSURE
    human_note: str | None = None

    def to_dict(self, images: bool = False) -> dict[str, Any]:
        """Plain JSON-ready data (the store's and the JSON report's form); images as base64 if asked."""
        faces = []
        for f in self.faces:
            face = {"frame": f.frame, "score": f.score, "box": list(f.box), "confidence": f.confidence}
            if images and f.thumbnail:
                face["thumbnail_jpeg"] = base64.b64encode(f.thumbnail).decode()
            faces.append(face)
        data = {
            "path": str(self.path), "verdict": self.verdict.value, "score": self.score,
            "threshold": self.threshold, "frames": list(self.frames), "frames_with_face": self.frames_with_face,
            "faces": faces, "duration_s": self.duration_s, "fps": self.fps, "width": self.width,
            "height": self.height, "sha256": self.sha256, "model": self.model, "error": self.error,
            "decoder": self.decoder, "notes": list(self.notes),
            "uncertain": list(self.uncertain) if self.uncertain else None, "covered_s": self.covered_s,
            **{k: getattr(self, k) for k in SOURCE_FIELDS}, "provenance_history": list(self.provenance_history),
            "people": [p.to_dict() for p in self.people],
            **{k: getattr(self, k) for k in QUEUE_FIELDS},
        }
        if images and self.explanation:
            data["explanation_jpeg"] = base64.b64encode(self.explanation).decode()
        return data

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VideoResult":
        faces = [FaceScore(f["frame"], f["score"], tuple(f["box"]), f["confidence"], _b64(f.get("thumbnail_jpeg")))
                 for f in d.get("faces", ())]
        return cls(
            explanation=_b64(d.get("explanation_jpeg")),
            path=Path(d["path"]), verdict=Verdict(d["verdict"]), score=d.get("score"),
            threshold=d.get("threshold", 0.5), frames=tuple(d.get("frames", ())),
            frames_with_face=d.get("frames_with_face", 0), faces=faces, duration_s=d.get("duration_s"),
            fps=d.get("fps"), width=d.get("width"), height=d.get("height"), sha256=d.get("sha256"),
            model=d.get("model", ""), error=d.get("error"), decoder=d.get("decoder"),
            notes=tuple(d.get("notes", ())),
            uncertain=tuple(d["uncertain"]) if d.get("uncertain") else None,
            **{k: d.get(k) for k in SOURCE_FIELDS}, provenance_history=tuple(d.get("provenance_history") or ()),
            people=[Person.from_dict(p) for p in d.get("people") or ()],
            **{k: d.get(k) for k in QUEUE_FIELDS},
        )

    @property
    def faces_scored(self) -> int:
        return len(self.faces)

    @property
    def max_face_score(self) -> float | None:
        return max((f.score for f in self.faces), default=None)

    @property
    def covered_s(self) -> float | None:
        """Seconds of the clip between the first and the last sampled frame (each frame 1/fps long)."""
        if not self.frames or not self.fps:
            return None
        span = (max(self.frames) - min(self.frames) + 1) / self.fps
        return round(min(span, self.duration_s) if self.duration_s else span, 3)

    @property
    def most_suspicious_frame(self) -> int | None:
        return max(self.faces, key=lambda f: f.score).frame if self.faces else None

    @property
    def counted_people(self) -> list[Person]:
        """The people who decide the verdict (not weak)."""
        return [p for p in self.people if not p.weak]

    @property
    def peak_time(self) -> float | None:
        """Seconds into the video of the most suspicious face of a counted person (None: none, or no fps)."""
        faces = [(s, t) for p in self.counted_people for s, t in zip(p.scores, p.times) if t is not None]
        return max(faces)[1] if faces else None


SOURCE_FIELDS = ("source_url", "final_url", "extractor", "fetched_at", "site", "provenance", "provenance_ai",
                 "provenance_issuer", "provenance_generator", "provenance_reason", "facts")

QUEUE_FIELDS = ("seen_before", "human_label", "human_note")


def _b64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None


@dataclass
class ScanReport:
    """All results of a scan, with the resolved settings a summary shows: nothing is read back
    out of a result or a config."""

    results: list[VideoResult]
    model: str  # the model's label (name or path) as reports show it
    device: str
    elapsed_s: float
    threshold: float | None  # the resolved threshold (the config's, else the model's own)
    settings: dict[str, Any] = field(default_factory=dict)  # what can change a result (see ScanPlan.score_settings)
    frames: str = ""  # the frame sample, described for people ("0:300:30", "10 spread")
    model_sha256: str = ""
    paths: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)  # wall-clock time, for the report header

    @property
    def aggregate(self) -> str | None:
        return self.settings.get("aggregate")

    @property
    def uncertain(self) -> tuple[float, float] | None:
        """The uncertain band of the scan ([low, high]), None: no band."""
        band = self.settings.get("uncertain")
        return (band[0], band[1]) if band else None

    def counts(self) -> dict[Verdict, int]:
        return {v: sum(r.verdict is v for r in self.results) for v in Verdict}
