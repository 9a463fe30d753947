"""The scan itself: discover -> decode -> detect -> classify -> aggregate, as a library.

Videos are decoded in worker processes (dfscan/decode: each video has a deadline) and their faces found in
threads of this process, while the main thread pushes crops, batched across videos, through the network.
Results come out in discovery order. `ScanConfig.engine` chooses where this runs: here (`Scanner`) or on a
Ray cluster (`dfscan.scanning.distributed.RayScanner`, whose workers each run a `Scanner`); `dfscan.api.open_scanner`
picks one, above both. Nothing here prints, parses argv or exits.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..classifier.model import Classifier
from ..classifier.model_info import ModelInfo
from ..classifier.registry import resolve_model
from ..classifier.runtime import check as runtime_check
from ..common.constants import AGGREGATES, DECODERS, ENGINES
from ..common.errors import ConfigError, VideoError, file_reason
from ..common.limits import check_all as check_ranges
from ..decode.read import FrameSpec, KeepError, read_frames
from ..results import FaceScore, Found, ScanReport, Verdict, VideoResult
from ..sources import annotate, read_credentials
from ..sources.facts import container_facts
from ..sources.links import LinkConfig, Progress, fetch_found, is_link
from ..store import ResultStore, settings_key
from ..verdicts import people
from ..verdicts.band import Band, BandSetting
from ..verdicts.band import resolve as resolve_band
from ..verdicts.band import setting as band_setting
from ..verdicts.link import signature
from . import concurrency
from .discover import VIDEO_EXTENSIONS, discover
from .faces import FaceConfig, FaceDetector, thumbnail
from .files import video_sha256

log = logging.getLogger(__name__)

DEFAULT_MARGIN = FaceConfig().margin  # for YuNet's boxes (dfscan/scanning/faces.py)


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
    # "openvino" (CPU), "tensorflow" (+ OpenCV's FaceDetectorYN for faces) or "auto" (classifier/runtime.py)
    runtime: str = "auto"
    aggregate: str = "confident"
    threshold: float | None = None  # None: the model's own default (0.5 for the reference)
    recursive: bool = True
    extensions: frozenset[str] = VIDEO_EXTENSIONS
    include_hidden: bool = False
    workers: int | None = None  # videos decoded at once; None: one per core plus one (Ray: per reserved CPU, at least 2)
    decoder: str = "auto"
    store: str | None = None  # SQLite result store; None: keep nothing between scans
    rescan: bool = False  # ignore stored results (new ones are still stored)
    thumbnails: bool = False  # keep small JPEGs of the face crops (for the HTML report)
    explain: bool = False  # a heatmap over the most suspicious crop of FAKE videos (dfscan/classifier/explain.py)
    engine: str = "local"  # "local": this process; "ray": a Ray cluster (see dfscan.scanning.distributed)
    address: str | None = None  # ray: "auto", "host:port" or "ray://host:port"; None starts a private Ray
    actors: int | None = None  # ray: scanning actors; None: one per GPU, else one per node
    uncertain: BandSetting = None  # a Band, "LOW:HIGH", "none" (no band) or None: the model's own band
    links: LinkConfig = LinkConfig()  # how URLs among the paths are fetched (dfscan/sources/links.py)
    trust_anchors: str | None = None  # PEM certificates a C2PA signer must chain to; None: no signer is trusted
    video_timeout: float | None = None  # seconds a video's decoding may take; None: decode/worker.default_timeout
    follow_links: bool = False  # enter links to folders outside the folder named (discover.py)

    def __post_init__(self):
        object.__setattr__(self, "uncertain", band_setting(self.uncertain))
        if isinstance(self.uncertain, Band) and self.threshold is not None:
            self.uncertain.check(self.threshold)
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"unknown aggregation {self.aggregate!r} (expected one of {AGGREGATES})")
        check_ranges({"threshold": self.threshold, "margin": self.margin, "batch_size": self.batch_size,
                      "workers": self.workers, "face_confidence": self.faces.min_confidence})  # FaceConfig: the rest
        if self.decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {self.decoder!r}")
        runtime_check(self.runtime)
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r} (expected one of {ENGINES})")
        if self.engine != "ray" and (self.address is not None or self.actors is not None):
            raise ConfigError("--address and --actors need --engine ray")
        check_ranges({"actors": self.actors, "video_timeout": self.video_timeout})


@dataclass
class _Prepared:
    """A video after decoding and detection, before classification."""

    found: Found
    result: VideoResult
    crops: list[np.ndarray] = field(default_factory=list)  # at most the model's input size (see _bounded)
    crop_meta: list[tuple[int, tuple[float, float, float, float], float, bytes | None]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    signatures: list[np.ndarray] = field(default_factory=list)  # each crop's appearance (verdicts/link.py)
    cached: VideoResult | None = None
    worst_crop: np.ndarray | None = None  # a reused FAKE's most suspicious crop, for --explain

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
        for notice in self.model_info.notices:
            logging.getLogger("dfscan.phase").info(notice)
        margin = next(m for m in (config.margin, self.model_info.margin, DEFAULT_MARGIN) if m is not None)
        self.face_config = replace(config.faces, margin=margin)
        self.threshold = config.threshold if config.threshold is not None else self.model_info.threshold
        self.band, widened = resolve_band(config.uncertain, self.model_info.uncertain, self.threshold,
                                          threshold_given=config.threshold is not None)
        if widened:
            log.warning(widened)
        self.store = ResultStore(config.store) if config.store else None
        self.times = concurrency.StageTimes()
        self.setting_values = self.score_settings()
        self.settings = settings_key(self.setting_values)  # (hash, canonical JSON): the store's key

    def score_settings(self) -> dict[str, Any]:
        """Everything besides the file and the model's bytes that can change a result."""
        c = self.config
        return {
            "frames": list(c.frames.indices), "num_frames": c.frames.count, "decoder": c.decoder,
            "faces": asdict(self.face_config), "aggregate": c.aggregate, "threshold": self.threshold,
            "preprocess": asdict(self.model_info.preprocess), "people": people.RULE,
            # what the network's output means and which network reads the weights: a fixed sidecar changes scores
            "output": self.model_info.output, "architecture": self.model_info.architecture,
        }

    def report(self, results: list[VideoResult], paths: list[str], elapsed_s: float) -> ScanReport:
        """A ScanReport of these results with this scanner's model, device and settings."""
        return ScanReport(
            results, self.model_info.label, self.device, elapsed_s, threshold=self.threshold,
            settings={**self.setting_values, "uncertain": self.band.as_list() if self.band else None},
            frames=self.config.frames.describe(),
            model_sha256=self.model_info.sha256 or "", paths=paths, started_at=time.time() - elapsed_s)

    def discover(self, paths: Iterable[str | Path], progress: Progress | None = None) -> list[Found]:
        """The videos under `paths`; URLs among them are fetched first (`progress` hears of each download)."""
        c = self.config
        paths = list(paths)
        links = [p for p in paths if is_link(p)]
        fetched = fetch_found(links, c.links, c.offline, progress) if links else []
        local = discover([p for p in paths if not is_link(p)], recursive=c.recursive, extensions=c.extensions,
                         include_hidden=c.include_hidden, follow_links=c.follow_links)
        return local + fetched

    def iter_scan(self, found: Sequence[Found]) -> Iterator[VideoResult]:
        """Yield one result per entry of `found`, in the same order, as each finishes."""
        raise NotImplementedError

    @property
    def device(self) -> str:
        raise NotImplementedError

    def on_frame(self, path: Path, frame: np.ndarray) -> None:
        """Each sampled frame as it is decoded, for subclasses (dfscan.queue's fingerprints); nothing here."""

    def _stored(self, sha256: str) -> VideoResult | None:
        """The stored result for these bytes, this model and these settings; None: scan the file."""
        if self.store is None or self.config.rescan:
            return None
        found = self.store.lookup(sha256, self.model_info.sha256, self.settings[0])
        if found is None:
            return None
        stored, when = found
        # Same bytes, same model bytes, same settings; the model's name may differ (a renamed copy).
        # The uncertain band is not part of the key: the verdict is judged again from the stored score.
        return self._judge(replace(VideoResult.from_dict(stored), model=self.model_info.label, scanned_at=when))

    def _judge(self, r: VideoResult) -> VideoResult:
        """Give a scored result its verdict under this scan's threshold and uncertain band."""
        r.uncertain = (self.band.low, self.band.high) if self.band else None
        people.judge(r, self.threshold, self.band)  # a fresh result without a score stays the ERROR placeholder
        return r

    def _keep(self, result: VideoResult) -> None:
        if not result.cached and result.scanned_at is None:
            result.scanned_at = time.time()
        # ERROR rows are not kept, so that the next scan tries those files again. Face images are
        # not kept either (sources' faces stay out of the store); --html recomputes them.
        if self.store and not result.cached and result.verdict is not Verdict.ERROR and result.sha256:
            self.store.put(result.sha256, self.model_info.sha256, self.settings, result.to_dict(images=False),
                           str(result.path), when=result.scanned_at)

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
        self.workers = config.workers or concurrency.default_workers()
        self.detector = FaceDetector(self.face_config, runtime=config.runtime, threads=self.workers)
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
        threads = concurrency.decode_threads(len(found), self.workers)
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dfscan-decode")
        try:
            self._submit(pool, todo, inflight, threads)
            while inflight:
                with self.times.timing("wait"):  # the network idles until decoding catches up
                    prepared = concurrency.interruptible_result(inflight.popleft())
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
                             model=self.model_info.label, uncertain=self.band and (self.band.low, self.band.high))
        prepared = _Prepared(found, result)
        annotate(result, found.origin)
        if found.error:
            result.error = found.error
            return prepared
        try:
            with self.times.timing("hash"):  # a pipe, a device, an empty file or (if big) no video: VideoError first
                result.sha256 = video_sha256(found.path)
            with self.times.timing("credentials"):  # read again for a stored result: the trust anchors may differ
                read_credentials(result, found.path, self.config.trust_anchors)
            stored = self._stored(result.sha256)
            if stored is not None:
                prepared.cached = replace(stored, path=found.path, cached=True, **_sources_of(result))
                if self.config.thumbnails and stored.faces and not any(f.thumbnail for f in stored.faces):
                    self._recrop(prepared, threads)
                return prepared
            clip = self._decode_and_detect(found.path, threads, self.config.thumbnails)
        except KeepError as exc:
            log.debug("face detection failed on %s", found.path, exc_info=True)
            result.error = f"face detection failed: {exc}"
            return prepared
        except (VideoError, OSError) as exc:
            result.error = file_reason(exc)
            return prepared
        except Exception as exc:  # a decoder bug must not end the whole scan
            log.debug("unexpected failure on %s", found.path, exc_info=True)
            result.error = f"internal error while decoding: {type(exc).__name__}: {exc}"
            return prepared
        result.frames, result.fps, result.width, result.height = clip.indices, clip.fps, clip.width, clip.height
        result.duration_s, result.decoder, result.notes = clip.duration_s, clip.backend, tuple(clip.notes)
        result.facts = clip.facts
        spec = self.config.frames
        if spec.count is None and clip.indices != spec.indices:
            result.notes += (f"only {clip.total_frames} frames: sampled frames spread over the whole clip",)
        result.notes += tuple(filter(None, [coverage_note(result)]))
        for index, faces in zip(clip.indices, clip.frames):
            prepared.result.frames_with_face += bool(faces)
            for box, confidence, crop, thumb in faces:
                prepared.crops.append(crop)
                prepared.signatures.append(signature(crop))
                prepared.crop_meta.append((index, box, confidence, thumb))
        return prepared

    def _decode_and_detect(self, path: Path, threads: int, thumbnails: bool):
        """The clip, holding each sampled frame's faces as (box, confidence, bounded crop, thumbnail or
        None): they are found as each frame is decoded, so that only one full-size frame is held at a time."""
        detecting = [0.0]

        def faces(frame: np.ndarray) -> list[tuple[tuple[float, float, float, float], float, np.ndarray,
                                                   bytes | None]]:
            start = time.perf_counter()
            self.on_frame(path, frame)
            try:
                return [(face.box, face.confidence, self._bounded(face.crop),
                         thumbnail(face.crop) if thumbnails else None)
                        for face in self.detector.faces(frame)]
            finally:
                detecting[0] += time.perf_counter() - start

        start = time.perf_counter()
        try:  # in a worker process, killed past the deadline (decode/worker.py): container_facts runs there
            return read_frames(path, self.config.frames, self.config.decoder, threads, keep=faces,
                               inspect=container_facts, timeout=self.config.video_timeout, isolated=True)
        finally:  # decoding: the time in read_frames less the detection within it
            self.times.add("detect", detecting[0])
            self.times.add("decode", time.perf_counter() - start - detecting[0])

    def _bounded(self, crop: np.ndarray) -> np.ndarray:
        """A crop no larger than the model's input: the classifier's own resize, done now, so the result is
        identical while an 8K frame's face costs 150 KB instead of up to 100 MB."""
        import cv2

        h, w = self.model_info.preprocess.input_size
        if crop.shape[0] <= h and crop.shape[1] <= w:
            return crop
        # Preprocess.apply stretches with INTER_LINEAR to (w, h) and then finds nothing to resize.
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)

    def _recrop(self, p: _Prepared, threads: int) -> None:
        """The face crops of a reused result, for the HTML report: the store keeps no face images.
        Found as in a scan (one full-size frame held at a time, crops bounded), so a reused FAKE's
        heatmap is drawn on the crop a fresh scan would use."""
        r = p.cached
        try:
            clip = self._decode_and_detect(p.found.path, threads, thumbnails=True)
        except Exception as exc:  # the verdict stands; only the pictures are missing
            log.debug("cannot recompute the crops of %s", p.found.path, exc_info=True)
            r.notes += (f"face crops not recomputed: {exc}",)
            return
        detected = dict(zip(clip.indices, clip.frames))
        worst = r.faces[people.worst_face(r)]
        faces = []
        for f in r.faces:
            match = _same_face(detected.get(f.frame, ()), f.box)
            if match is not None and f is worst:
                p.worst_crop = match[2]
            faces.append(replace(f, thumbnail=match[3]) if match is not None else f)
        r.faces = faces

    def _conclude(self, p: _Prepared) -> VideoResult:
        if p.cached is not None:
            r = p.cached
            if self.config.explain and r.verdict is Verdict.FAKE and r.explanation is None and p.worst_crop is not None:
                r.explanation = self._explain(p.worst_crop, r)
            return r
        r = p.result
        if r.error:
            return r
        r.faces = [FaceScore(frame, score, box, conf, thumb)
                   for (frame, box, conf, thumb), score in zip(p.crop_meta, p.scores)]
        if not r.faces:
            r.verdict = Verdict.NO_FACE
            return r
        people.find_people(r, np.stack(p.signatures) if p.signatures else None, self.config.aggregate)
        self._judge(r)
        if self.config.explain and r.verdict is Verdict.FAKE:
            worst = people.worst_face(r)  # the most suspicious face of a person who counts
            r.explanation = self._explain(p.crops[worst], r)
        return r

    def _explain(self, crop: np.ndarray, r: VideoResult) -> bytes | None:
        from ..classifier.explain import explain_crop

        try:
            return explain_crop(self.classifier, crop)
        except Exception as exc:  # an explanation is a extra: it must never cost the verdict
            log.debug("no heatmap for %s", r.path, exc_info=True)
            r.notes += (f"no heatmap: {exc}",)
            return None


# Most of a clip unseen (a 60 s clip under the default frames 0-270: 85%) is said in its notes.
UNSEEN_NOTE_SHARE = 0.5


def coverage_note(r: VideoResult) -> str | None:
    """A note when more than UNSEEN_NOTE_SHARE of the clip lies outside the sampled frames; else None."""
    covered, duration = r.covered_s, r.duration_s
    if covered is None or not duration or covered >= (1 - UNSEEN_NOTE_SHARE) * duration:
        return None
    return (f"the sampled frames cover {covered:.1f} s of {duration:.1f} s ({covered / duration:.0%}): "
            f"{1 - covered / duration:.0%} of the clip was never looked at (spread the frames over the "
            f"whole clip: --num-frames {len(r.frames)})")
def _sources_of(r: VideoResult) -> dict[str, Any]:
    """This scan's link and credentials, which a stored result of the same bytes must not replace."""
    from ..results import SOURCE_FIELDS

    return {k: getattr(r, k) for k in (*SOURCE_FIELDS, "provenance_history") if k != "facts"}


def _same_face(faces, box, min_iou: float = 0.5):
    """The detected face, a (box, ...) tuple, whose box matches `box` best (detection is deterministic:
    the same box)."""
    def iou(a, b) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    best = max(faces, key=lambda face: iou(face[0], box), default=None)
    return best if best is not None and iou(best[0], box) >= min_iou else None
