"""The scan itself: discover -> decode -> detect -> classify -> aggregate, as a library.

Videos are decoded and their faces detected in worker threads (OpenCV, decord
and hashlib release the GIL) while the main thread pushes crops, batched
across videos, through the network. Results come out in discovery order.
`ScanConfig.engine` chooses where this runs: here (`Scanner`) or on a Ray
cluster (`dfscan.distributed.RayScanner`, whose workers each run a `Scanner`).
Nothing here prints, parses argv or exits.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .aggregate import AGGREGATES, Verdict, aggregate, verdict
from .discover import VIDEO_EXTENSIONS, Found, discover
from .errors import ConfigError, VideoError
from .faces import FaceConfig, FaceDetector, thumbnail
from .model import Classifier, ModelInfo, file_sha256
from .registry import resolve_model
from .runtime import check as runtime_check
from .store import ResultStore, settings_key
from .video import DECODERS, FrameSpec, read_frames

log = logging.getLogger(__name__)

DEFAULT_MARGIN = FaceConfig().margin  # for YuNet's boxes (dfscan/faces.py)
ENGINES = ("local", "ray")
UNREADABLE = "cannot read file"  # how a result's error starts when the file's bytes could not be read


@dataclass(frozen=True)
class ScanConfig:
    """Every setting of a scan. The CLI builds one from its options."""

    model: str | None = None  # a registry name, hf:// id or .keras path; None: the registry's default
    offline: bool = False
    frames: FrameSpec = FrameSpec()
    faces: FaceConfig = FaceConfig()
    margin: float | None = None  # None: the model's own, else DEFAULT_MARGIN
    batch_size: int = 32
    device: str = "auto"
    runtime: str = "auto"  # "openvino" (CPU), "tensorflow" (+ OpenCV's dnn for faces) or "auto" (see runtime.py)
    aggregate: str = "confident"
    threshold: float | None = None  # None: the model's own default (0.5 for the reference)
    recursive: bool = True
    extensions: frozenset[str] = VIDEO_EXTENSIONS
    include_hidden: bool = False
    workers: int | None = None  # videos decoded at once; None: one per core (Ray: per reserved CPU, at least 2)
    decoder: str = "auto"
    store: str | None = None  # SQLite result store; None: keep nothing between scans
    rescan: bool = False  # ignore stored results (new ones are still stored)
    thumbnails: bool = False  # keep small JPEGs of the face crops (for the HTML report)
    explain: bool = False  # a heatmap over the most suspicious crop of FAKE videos (dfscan/explain.py)
    engine: str = "local"  # "local": this process; "ray": a Ray cluster (see dfscan.distributed)
    address: str | None = None  # ray: "auto", "host:port" or "ray://host:port"; None starts a private Ray
    actors: int | None = None  # ray: scanning actors; None: one per GPU, else one per node

    def __post_init__(self):
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"unknown aggregation {self.aggregate!r} (expected one of {AGGREGATES})")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError("--threshold must be between 0 and 1")
        if self.margin is not None and not 0.0 <= self.margin <= 3.0:
            raise ConfigError("--margin must be between 0 and 3")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if self.faces.max_faces < 1:
            raise ConfigError("--max-faces must be at least 1")
        if self.decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {self.decoder!r}")
        runtime_check(self.runtime)
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r} (expected one of {ENGINES})")
        if self.engine != "ray" and (self.address is not None or self.actors is not None):
            raise ConfigError("--address and --actors need --engine ray")
        if self.actors is not None and self.actors < 1:
            raise ConfigError("--actors must be at least 1")


@dataclass(frozen=True)
class FaceScore:
    frame: int
    score: float
    box: tuple[float, float, float, float]
    confidence: float
    thumbnail: bytes | None = None  # a small JPEG of the crop, kept for the HTML report


@dataclass
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
    explanation: bytes | None = None  # JPEG: a heatmap over the most suspicious crop (--explain)

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
        )

    @property
    def faces_scored(self) -> int:
        return len(self.faces)

    @property
    def max_face_score(self) -> float | None:
        return max((f.score for f in self.faces), default=None)

    @property
    def most_suspicious_frame(self) -> int | None:
        return max(self.faces, key=lambda f: f.score).frame if self.faces else None


def _b64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None


@dataclass
class ScanReport:
    """All results of a scan plus what a summary needs."""

    results: list[VideoResult]
    model: str
    device: str
    elapsed_s: float
    config: ScanConfig
    paths: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)  # wall-clock time, for the report header
    settings: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[Verdict, int]:
        return {v: sum(r.verdict is v for r in self.results) for v in Verdict}


class StageTimes:
    """Seconds spent per stage, summed over threads (decode and detect overlap the network)."""

    STAGES = ("hash", "decode", "detect", "classify", "wait")

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds = dict.fromkeys(self.STAGES, 0.0)

    @contextmanager
    def timing(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[stage] += time.perf_counter() - start


@dataclass
class _Prepared:
    """A video after decoding and detection, before classification."""

    found: Found
    result: VideoResult
    crops: list[np.ndarray] = field(default_factory=list)
    crop_meta: list[tuple[int, tuple[float, float, float, float], float, bytes | None]] = field(
        default_factory=list)
    scores: list[float] = field(default_factory=list)
    cached: VideoResult | None = None

    @property
    def done(self) -> bool:
        return len(self.scores) == len(self.crops)


class ScanPlan:
    """What a scan will do, with nothing heavy loaded: the model's identity, the settings
    derived from it, the result store and discovery. The engines build on it."""

    def __init__(self, config: ScanConfig = ScanConfig(), model_info: ModelInfo | None = None):
        self.config = config
        self.model_info = model_info or resolve_model(config.model, config.offline)
        for warning in self.model_info.warnings:
            log.warning(warning)
        margin = config.margin if config.margin is not None else (self.model_info.margin or DEFAULT_MARGIN)
        self.face_config = replace(config.faces, margin=margin)
        self.threshold = config.threshold if config.threshold is not None else self.model_info.threshold
        self.store = ResultStore(config.store) if config.store else None
        self.times = StageTimes()
        self.settings = settings_key(self.score_settings())

    def score_settings(self) -> dict[str, Any]:
        """Everything besides the file and the model's bytes that can change a result."""
        c = self.config
        return {
            "frames": list(c.frames.indices), "num_frames": c.frames.count, "decoder": c.decoder,
            "faces": asdict(self.face_config), "aggregate": c.aggregate, "threshold": self.threshold,
            "preprocess": asdict(self.model_info.preprocess),
        }

    def report(self, results: list[VideoResult], paths: list[str], elapsed_s: float) -> ScanReport:
        """A ScanReport of these results with this scanner's model, device and settings."""
        return ScanReport(results, self.model_info.label, self.device, elapsed_s, self.config, paths,
                          time.time() - elapsed_s, json.loads(self.settings[1]))

    def discover(self, paths: Iterable[str | Path]) -> list[Found]:
        c = self.config
        return discover(paths, recursive=c.recursive, extensions=c.extensions, include_hidden=c.include_hidden)

    def iter_scan(self, found: Sequence[Found]) -> Iterator[VideoResult]:
        """Yield one result per entry of `found`, in the same order, as each finishes."""
        raise NotImplementedError

    @property
    def device(self) -> str:
        raise NotImplementedError

    def _stored(self, sha256: str) -> VideoResult | None:
        """The stored result for these bytes, this model and these settings; None: scan the file."""
        if self.store is None or self.config.rescan:
            return None
        stored = self.store.get(sha256, self.model_info.sha256, self.settings[0])
        # Same bytes, same model bytes, same settings; the model's name may differ (a renamed copy).
        return None if stored is None else replace(VideoResult.from_dict(stored), model=self.model_info.label)

    def _keep(self, result: VideoResult) -> None:
        # ERROR rows are not kept, so that the next scan tries those files again.
        if self.store and not result.cached and result.verdict is not Verdict.ERROR and result.sha256:
            self.store.put(result.sha256, self.model_info.sha256, self.settings, result.to_dict(images=True),
                           str(result.path))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> "ScanPlan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Scanner(ScanPlan):
    """Scans in this process: holds the loaded model and face detector; scans any number of paths."""

    def __init__(self, config: ScanConfig = ScanConfig(), model_info: ModelInfo | None = None):
        super().__init__(config, model_info)
        # One video per core: decoding and detection scale with the cores (16-core machine, network
        # left out: 2 workers 0.28 s/video, 16 workers 0.16; bench/workers_scaling.py).
        self.workers = config.workers or available_cores()
        self.detector = FaceDetector(self.face_config, runtime=config.runtime)
        self.classifier = Classifier(self.model_info, device=config.device, batch_size=config.batch_size,
                                     runtime=config.runtime)

    @property
    def device(self) -> str:
        return self.classifier.device

    def iter_scan(self, found: Sequence[Found]) -> Iterator[VideoResult]:
        """Yield one result per entry of `found`, in the same order, as each finishes."""
        pending: deque[_Prepared] = deque()
        queue: deque[tuple[_Prepared, int]] = deque()  # crops waiting for the network
        inflight: deque[Future] = deque()
        todo = iter(found)
        threads = decode_threads(len(found), self.workers)
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dfscan-decode")
        try:
            self._submit(pool, todo, inflight, threads)
            while inflight:
                with self.times.timing("wait"):  # the network idles until decoding catches up
                    prepared = inflight.popleft().result()
                self._submit(pool, todo, inflight, threads)
                pending.append(prepared)
                queue.extend((prepared, i) for i in range(len(prepared.crops)))
                while len(queue) >= self.config.batch_size:
                    self._classify(queue, self.config.batch_size)
                yield from self._finished(pending)
            self._classify(queue, len(queue))
            yield from self._finished(pending)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, pool: ThreadPoolExecutor, todo: Iterator[Found], inflight: deque, threads: int) -> None:
        # A small window keeps memory flat however many videos there are.
        while len(inflight) < self.workers + 2:
            item = next(todo, None)
            if item is None:
                return
            inflight.append(pool.submit(self._prepare, item, threads))

    def _classify(self, queue: deque, n: int) -> None:
        if n <= 0:
            return
        items = [queue.popleft() for _ in range(n)]
        with self.times.timing("classify"):
            scores = self.classifier.predict([p.crops[i] for p, i in items])
        for (p, _), s in zip(items, scores):
            p.scores.append(float(s))

    def _finished(self, pending: deque[_Prepared]) -> Iterator[VideoResult]:
        while pending and pending[0].done:
            result = self._conclude(pending.popleft())
            self._keep(result)
            yield result

    def _prepare(self, found: Found, threads: int) -> _Prepared:
        """Decode (with `threads` decoding threads), detect and crop one video (runs in a worker thread)."""
        result = VideoResult(path=found.path, verdict=Verdict.ERROR, threshold=self.threshold,
                             model=self.model_info.label)
        prepared = _Prepared(found, result)
        if found.error:
            result.error = found.error
            return prepared
        try:
            if found.path.stat().st_size == 0:
                raise VideoError("empty file (0 bytes)")
            with self.times.timing("hash"):
                result.sha256 = _sha256(found.path)
            stored = self._stored(result.sha256)
            if stored is not None:
                prepared.cached = replace(stored, path=found.path, cached=True)
                return prepared
            with self.times.timing("decode"):
                clip = read_frames(found.path, self.config.frames, self.config.decoder, threads)
        except (VideoError, OSError) as exc:
            result.error = _reason(exc)
            return prepared
        except Exception as exc:  # a decoder bug must not end the whole scan
            log.debug("unexpected failure on %s", found.path, exc_info=True)
            result.error = f"internal error while decoding: {type(exc).__name__}: {exc}"
            return prepared
        result.frames, result.fps, result.width, result.height = clip.indices, clip.fps, clip.width, clip.height
        result.duration_s, result.decoder, result.notes = clip.duration_s, clip.backend, tuple(clip.notes)
        spec = self.config.frames
        if spec.count is None and clip.indices != spec.indices:
            result.notes += (f"only {clip.total_frames} frames: sampled frames spread over the whole clip",)
        try:
            with self.times.timing("detect"):
                self._detect(clip, prepared)
        except Exception as exc:
            log.debug("face detection failed on %s", found.path, exc_info=True)
            result.error = f"face detection failed: {type(exc).__name__}: {exc}"
            prepared.crops.clear()
        return prepared

    def _detect(self, clip, prepared: _Prepared) -> None:
        """Faces of every sampled frame, as crops waiting for the network."""
        for index, frame in zip(clip.indices, clip.frames):
            faces = self.detector.faces(frame)
            prepared.result.frames_with_face += bool(faces)
            for face in faces:
                prepared.crops.append(face.crop)
                thumb = thumbnail(face.crop) if self.config.thumbnails else None
                prepared.crop_meta.append((index, face.box, face.confidence, thumb))

    def _conclude(self, p: _Prepared) -> VideoResult:
        if p.cached is not None:
            return p.cached
        r = p.result
        if r.error:
            return r
        r.faces = [FaceScore(frame, score, box, conf, thumb)
                   for (frame, box, conf, thumb), score in zip(p.crop_meta, p.scores)]
        if not r.faces:
            r.verdict = Verdict.NO_FACE
            return r
        r.score = aggregate([f.score for f in r.faces], self.config.aggregate)
        r.verdict = verdict(r.score, self.threshold)
        if self.config.explain and r.verdict is Verdict.FAKE:
            worst = max(range(len(p.scores)), key=p.scores.__getitem__)
            r.explanation = self._explain(p.crops[worst], r)
        return r

    def _explain(self, crop: np.ndarray, r: VideoResult) -> bytes | None:
        from .explain import explain_crop

        try:
            return explain_crop(self.classifier, crop)
        except Exception as exc:  # an explanation is a extra: it must never cost the verdict
            log.debug("no heatmap for %s", r.path, exc_info=True)
            r.notes += (f"no heatmap: {exc}",)
            return None


def decode_threads(videos: int, workers: int) -> int:
    """Decoding threads per video: the cores shared among the videos decoded at once.

    FFmpeg's own choice (cores + 1 frame threads per video) pays off little when only
    reference frames are decoded and oversubscribes the cores when several videos are
    decoded side by side (bench/: one thread each made scans on 2 cores ~10% faster).
    """
    return max(1, available_cores() // max(1, min(videos, workers)))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _sha256(path: Path) -> str:
    return file_sha256(path)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{UNREADABLE}: {exc.strerror or exc}"
    return str(exc)


def scan(
    paths: Iterable[str | Path],
    config: ScanConfig = ScanConfig(),
    *,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
) -> ScanReport:
    """Scan files and folders; the Python API behind `dfscan scan`.

    `on_start` gets the number of videos found, `on_result` each result as it finishes.

    >>> report = scan(["videos/"], ScanConfig(model="model.keras"))  # doctest: +SKIP
    >>> [(r.path.name, r.verdict, r.score) for r in report.results]  # doctest: +SKIP
    """
    started = time.perf_counter()
    paths = list(paths)
    with open_scanner(config) as scanner:
        found = scanner.discover(paths)
        if on_start:
            on_start(len(found))
        results = []
        for result in scanner.iter_scan(found):
            results.append(result)
            if on_result:
                on_result(result)
        return scanner.report(results, [str(p) for p in paths], time.perf_counter() - started)


def open_scanner(config: ScanConfig = ScanConfig()) -> ScanPlan:
    """The scanner for `config.engine`: this process (`Scanner`) or a Ray cluster (`RayScanner`).

    Close it when done (or use it as a context manager): the ray engine then stops its workers.
    """
    if config.engine == "ray":
        from .distributed import RayScanner  # Ray is optional and heavy: imported only when asked for

        return RayScanner(config)
    return Scanner(config)
