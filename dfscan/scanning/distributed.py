"""The ray engine: the same scan spread over a Ray cluster.

The driver (this process) walks the paths, owns the result store and writes the
reports, as a local scan does. The videos go to worker actors: each one holds
one loaded model and a local `Scanner`, so decoding, face detection and the
batching of crops across videos run where the file is read, through the very
code of a local scan. Each worker gets a read-only copy of the store's results
for this model and these settings and reuses them as a local scan does (it
hashes each file where it is read). Videos travel in small chunks, pulled as
workers free up, and results come back chunk by chunk; the driver commits the
new ones to the store as they arrive and yields them in discovery order.

A worker process that dies (killed, out of memory, its node gone) is restarted
by Ray; the videos it had not returned are sent again to whichever worker is
free first. Results are recorded by position, once, so nothing is lost or
reported twice. Paths must name the same files on every node (shared storage);
a worker that cannot read a file returns an ERROR row naming its node.

Ray is imported only here, and only when the ray engine is asked for.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..classifier.model_info import ModelInfo, file_sha256
from ..common.dirs import CACHE_ENV, cache_dir, is_private_dir, private_dir
from ..common.errors import UNREADABLE, ConfigError, DfscanError, first_line
from ..reports.writers import write_atomic
from ..results import Found, Verdict, VideoResult
from .pipeline import ScanConfig, Scanner, ScanPlan

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[ray]' in dfscan's folder"
MAX_ATTEMPTS = 3  # a video whose worker died this many times is reported as ERROR, not tried forever
MAX_RESTARTS = 4  # Ray restarts a dead worker actor this many times
CALLS_PER_WORKER = 2  # chunks queued on each worker, so it never waits for the driver between two
STARTUP_TIMEOUT_S = 600.0  # for the first worker to load its model (and for the cluster to find room)
POLL_S = 5.0
SLOW_START_S = 60.0  # then say that the workers are still waiting
RECHECK_S = 1.0  # how often to ask a restarting worker whether it is back


class RayNotInstalled(ConfigError):
    """--engine ray without Ray: exit 2, saying how to install it."""


def import_ray(private_instance: bool):
    """Import Ray, or say how to install it.

    A private instance (no --address) is for this machine alone: Ray's switch for
    single-node platforms keeps its sockets on 127.0.0.1. It is read when Ray is
    imported, so it is set only before the first import and only if the user has not.
    """
    if private_instance and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalled(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


@dataclass(frozen=True)
class WorkerInfo:
    """Where a worker actor runs."""

    node_id: str
    hostname: str
    pid: int
    device: str
    workers: int = 2  # videos its Scanner decodes at once

    @property
    def where(self) -> str:
        return f"node {self.hostname} (Ray node {self.node_id[:12]})"


class ScanWorker:
    """One Ray actor: a model loaded once, scanning the chunks of videos it is sent."""

    def __init__(self, config: ScanConfig, info: ModelInfo, model_bytes: bytes):
        import ray

        local = replace(info, path=_model_copy(info, model_bytes), warnings=())  # the driver has warned
        # --workers unset: the CPUs Ray reserved for this actor (a whole node by default), at least 2.
        reserved = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0))
        config = replace(config, engine="local", address=None, actors=None, store=None,
                         workers=config.workers or max(2, reserved))
        self.scanner = Scanner(config, local)
        node_id = ray.get_runtime_context().get_node_id()
        self.info = WorkerInfo(node_id, socket.gethostname(), os.getpid(), self.scanner.device, self.scanner.workers)
        self._stored = None

    def ready(self) -> WorkerInfo:
        return self.info

    def scan(self, found: list[Found], stored: list) -> list[VideoResult]:
        """Scan a chunk; `stored` holds (unresolved) the ObjectRef of the driver's StoreSnapshot, or of None."""
        import ray

        if stored[0] != self._stored:  # a new scan: fetch its stored results once, not with every chunk
            # The Scanner looks them up (and reuses them) as a local scan does in its store; it keeps
            # nothing there: the driver stores each new result as it arrives.
            self._stored, self.scanner.store = stored[0], ray.get(stored[0])
        return [self._name_node(r) for r in self.scanner.iter_scan(found)]

    def _name_node(self, r: VideoResult) -> VideoResult:
        # The driver found the file, this node could not read it: most likely storage that is not shared.
        if r.error and r.error.startswith(UNREADABLE):
            r.error += f" on {self.info.where}; every node must see the same paths (shared storage)"
        return r


def _model_copy(info: ModelInfo, data: bytes) -> Path:
    """The model's bytes as a file on this node (Keras loads files), checked against the driver's hash.

    Kept by SHA-256 in this user's cache folder, 0600 in a 0700 folder: the workers of a node share
    one copy, no other user can read or swap it, and a copy found there is used only if its bytes
    still have that hash.
    """
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise DfscanError(f"the model's bytes changed on the way to {socket.gethostname()}")
    folder = cache_dir() / "models"
    try:
        if not is_private_dir(private_dir(folder)):
            raise DfscanError(f"{folder} on {socket.gethostname()} is not a folder private to this user: others "
                              f"could read or replace the model there; set {CACHE_ENV} to one that is")
        path = folder / f"{info.sha256}{info.path.suffix or '.keras'}"
        if path.is_symlink() or not path.is_file() or file_sha256(path) != info.sha256:
            write_atomic(path, data, overwrite=True, private=True)  # whole or absent, even with several workers
    except OSError as exc:
        raise DfscanError(f"cannot keep the model in {folder} on {socket.gethostname()}: {exc.strerror or exc}; "
                          f"set {CACHE_ENV} to a writable folder") from exc
    return path


@dataclass(eq=False)
class _Worker:
    """The driver's view of one worker actor."""

    handle: Any
    info: WorkerInfo | None = None
    ping: Any = None  # a `ready` call in flight: the worker is starting or restarting
    recheck_at: float | None = None  # Ray said it is restarting: send `ready` again at this time
    calls: int = 0  # scan calls in flight
    error: str | None = None  # why it is gone for good

    @property
    def live(self) -> bool:
        return self.ping is None and self.recheck_at is None and self.error is None

    @property
    def name(self) -> str:
        return self.info.where if self.info else "a worker that had not started"


@dataclass
class _Progress:
    """One scan's bookkeeping on the driver."""

    found: Sequence[Found]
    stored: Any  # ObjectRef of the store's results for this model and settings; each worker fetches it once
    todo: deque[int] = field(default_factory=deque)  # positions waiting for a worker
    results: dict[int, VideoResult] = field(default_factory=dict)  # finished, not yet yielded
    attempts: Counter[int] = field(default_factory=Counter)
    calls: dict[Any, tuple[_Worker, list[int]]] = field(default_factory=dict)  # ObjectRef -> who, what
    next_out: int = 0
    done: set[int] = field(default_factory=set)
    last_answer: float = field(default_factory=time.monotonic)


class RayScanner(ScanPlan):
    """Scans on a Ray cluster: the driver side of the ray engine."""

    def __init__(self, config: ScanConfig = ScanConfig(engine="ray"), model_info: ModelInfo | None = None):
        self._ray = import_ray(private_instance=config.address is None)  # before the model: fail fast
        super().__init__(config, model_info)
        self._started_ray = False
        self._model = None
        self.workers: list[_Worker] = []
        try:
            self._started_ray = _connect(self._ray, config.address)
            self._start_workers()
        except BaseException:
            self.close()
            raise

    @property
    def device(self) -> str:
        up = [w.info for w in self.workers if w.info is not None]
        kinds = ", ".join(sorted({i.device for i in up})) or "not started"
        nodes = len({i.node_id for i in up})
        return f"Ray: {_count(len(up), 'worker')} on {_count(nodes, 'node')} ({kinds})"

    # -- workers ---------------------------------------------------------------------------------

    def _start_workers(self) -> None:
        ray = self._ray
        actor = ray.remote(ScanWorker)
        # Held for the scanner's life: a restarted worker reads the model from the object store again.
        self._model = ray.put(self.model_info.path.read_bytes())
        for options in _placements(ray, self.config):
            handle = actor.options(max_restarts=MAX_RESTARTS, max_task_retries=0,
                                   **options).remote(self.config, self.model_info, self._model)
            self.workers.append(_Worker(handle, ping=handle.ready.remote()))
        self._await_first_worker()

    def _await_first_worker(self) -> None:
        """Wait until one worker has loaded the model; the others join when they are ready."""
        started = time.monotonic()
        warned = False
        while not any(w.live for w in self.workers):
            if all(w.error for w in self.workers):
                reasons = "; ".join(sorted({w.error or "" for w in self.workers}))
                raise DfscanError(f"no Ray worker could start: {reasons}")
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise DfscanError(f"no Ray worker started within {STARTUP_TIMEOUT_S:.0f} s; does the cluster "
                                  "have a free CPU (see `ray status`)?")
            self._wait([])
            if not warned and time.monotonic() - started > SLOW_START_S:
                warned = True  # most often the cluster's CPUs are held by another scan: say so rather than hang
                log.warning("no Ray worker has started after %.0f s: waiting for room on the cluster (a worker "
                            "takes every CPU of its node; see `ray status`)", SLOW_START_S)

    def _wait(self, calls: list) -> list:
        """Wait for the next answer among `calls` and the workers' `ready` pings; return the calls answered."""
        now = time.monotonic()
        for w in self.workers:
            if w.recheck_at is not None and w.recheck_at <= now:
                w.recheck_at, w.ping = None, w.handle.ready.remote()
        pings = {w.ping: w for w in self.workers if w.ping is not None}
        due = [w.recheck_at for w in self.workers if w.recheck_at is not None]
        timeout = max(0.05, min([POLL_S, *(t - now for t in due)]))
        if not calls and not pings:
            time.sleep(timeout)
            return []
        ready, _ = self._ray.wait([*calls, *pings], num_returns=1, timeout=timeout)
        for ref in ready:
            if ref in pings:
                self._answered(pings[ref], ref)
        return [ref for ref in ready if ref not in pings]

    def _answered(self, worker: _Worker, ref) -> None:
        """A `ready` call came back: the worker is up, still restarting, or gone for good."""
        worker.ping, before = None, worker.info
        exceptions = self._ray.exceptions
        try:
            worker.info = self._ray.get(ref)
            if before is not None:
                log.info("the Ray worker on %s is back (process %d)", worker.name, worker.info.pid)
        except exceptions.ActorUnavailableError:  # Ray is restarting it: ask again shortly
            worker.recheck_at = time.monotonic() + RECHECK_S
        except exceptions.RayActorError as exc:
            worker.error = _ray_message(exc)
            log.warning("a Ray worker stopped for good: %s", worker.error)

    def _lost(self, worker: _Worker) -> None:
        # Ray restarts the actor; `ready` answers once it has loaded the model again (or cannot).
        worker.ping = worker.handle.ready.remote()

    # -- scanning --------------------------------------------------------------------------------

    def iter_scan(self, found: Sequence[Found]) -> Iterator[VideoResult]:
        """Yield one result per entry of `found`, in the same order, as each finishes."""
        stored = self.store.snapshot(self.model_info.sha256, self.settings[0]) \
            if self.store is not None and not self.config.rescan else None
        p = _Progress(found, self._ray.put(stored), deque(range(len(found))))
        try:
            while p.next_out < len(found):
                self._dispatch(p)
                self._collect(p)
                while p.next_out in p.results:
                    yield p.results.pop(p.next_out)
                    p.next_out += 1
        finally:
            for ref in p.calls:  # an abandoned scan (Ctrl-C) must not keep the cluster busy
                try:
                    self._ray.cancel(ref)
                except Exception:  # the worker is gone already
                    log.debug("cannot cancel a Ray call", exc_info=True)

    def _dispatch(self, p: _Progress) -> None:
        while p.todo:
            free = [w for w in self.workers if w.live and w.calls < CALLS_PER_WORKER]
            if not free:
                return
            worker = min(free, key=lambda w: w.calls)
            # What its Scanner decodes at once: its threads stay fed and crops batch.
            size = (worker.info.workers if worker.info else 2) + 2
            chunk = [p.todo.popleft()]
            # A video whose worker died travels alone from then on: one that kills its worker every
            # time ends as an ERROR row without taking the videos around it down too.
            while p.todo and len(chunk) < size and chunk[0] not in p.attempts and p.todo[0] not in p.attempts:
                chunk.append(p.todo.popleft())
            ref = worker.handle.scan.remote([_absolute(p.found[i]) for i in chunk], [p.stored])
            p.calls[ref] = (worker, chunk)
            worker.calls += 1

    def _collect(self, p: _Progress) -> None:
        """Wait for the next answer: a chunk of results, a failed chunk, or a worker coming back."""
        if not p.calls and all(w.error for w in self.workers):
            reasons = "; ".join(sorted({w.error or "" for w in self.workers}))
            raise DfscanError(f"every Ray worker has stopped ({reasons}); {len(p.found) - len(p.done)} videos "
                              "were not scanned. Results so far are in the store: run the scan again to finish")
        ready = self._wait(list(p.calls))
        if ready:
            p.last_answer = time.monotonic()
        elif not p.calls and time.monotonic() - p.last_answer > STARTUP_TIMEOUT_S:
            raise DfscanError(f"no Ray worker has come back for {STARTUP_TIMEOUT_S:.0f} s (see `ray status`); "
                              "results so far are in the store: run the scan again to finish")
        for ref in ready:
            self._chunk_done(p, ref)

    def _chunk_done(self, p: _Progress, ref) -> None:
        worker, chunk = p.calls.pop(ref)
        worker.calls -= 1
        try:
            rows = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as exc:
            self._retry(p, worker, chunk, exc)
            return
        except self._ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            raise cause if isinstance(cause, DfscanError) else exc  # as a local scan would stop
        for i, row in zip(chunk, rows):
            self._record(p, i, row)

    def _retry(self, p: _Progress, worker: _Worker, chunk: list[int], exc: Exception) -> None:
        log.warning("the Ray worker on %s died (%s); its %d unfinished videos are sent again",
                    worker.name, type(exc).__name__, len(chunk))
        if worker.live:
            self._lost(worker)
        for i in reversed(chunk):
            p.attempts[i] += 1
            if p.attempts[i] >= MAX_ATTEMPTS:
                self._record(p, i, self._error_row(p.found[i], f"the Ray worker scanning this file died "
                                                   f"{MAX_ATTEMPTS} times (last on {worker.name})"))
            else:
                p.todo.appendleft(i)

    def _record(self, p: _Progress, i: int, row: VideoResult) -> None:
        if i in p.done:  # an answer for a video already recorded: never reported twice
            return
        row = replace(row, path=p.found[i].path)  # the path as the user gave it
        self._keep(row)  # committed now, in arrival order: a killed driver loses nothing finished
        p.done.add(i)
        p.results[i] = row

    def _error_row(self, found: Found, error: str) -> VideoResult:
        return VideoResult(path=found.path, verdict=Verdict.ERROR, threshold=self.threshold,
                           model=self.model_info.label, error=error)

    def close(self) -> None:
        ray = self._ray
        for w in getattr(self, "workers", ()):
            try:
                ray.kill(w.handle, no_restart=True)  # each holds a model in memory
            except Exception:  # the cluster is gone already
                log.debug("cannot stop a Ray worker", exc_info=True)
        self.workers = []
        if getattr(self, "_started_ray", False):
            ray.shutdown()
            self._started_ray = False
        super().close()


def _absolute(found: Found) -> Found:
    # Workers do not share the driver's working folder; reports keep the path as it was given.
    return found if found.path.is_absolute() else replace(found, path=Path.cwd() / found.path)


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at `address`, or start a private instance; True if this call started Ray."""
    if ray.is_initialized():  # the caller's own Ray session (Python API): use it as it is
        return False
    # Workers run the driver's own dfscan code (Ray ships it); its dependencies must be installed on every node.
    code = {"py_modules": [str(Path(__file__).resolve().parents[1])], "excludes": ["__pycache__"]}
    verbose = log.isEnabledFor(logging.DEBUG)
    # Ray's own start-up notes would land in the middle of the report; --verbose shows them and the workers' logs.
    quiet = dict(logging_level=logging.INFO if verbose else logging.ERROR, log_to_driver=verbose, runtime_env=code)
    logging.getLogger("ray").setLevel(quiet["logging_level"])
    try:
        if address is None:
            ray.init(address="local", include_dashboard=False, **quiet)
        else:
            _check_reachable(address)
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a private instance on this machine"
        raise DfscanError(f"cannot start or reach Ray at {where}: {_ray_message(exc)}") from exc
    return True


def _check_reachable(address: str, timeout_s: float = 15.0) -> None:
    """Fail in seconds when nothing listens at HOST:PORT: Ray itself keeps retrying for many minutes."""
    m = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)/?", address)
    if not m:
        return  # "auto" and other forms: Ray says at once when it finds nothing
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {m.group(1)}:{m.group(2)} ({exc.strerror or exc}); is the "
                              "cluster started (`ray start --head`) and the port right?") from exc


def _placements(ray, config: ScanConfig) -> list[dict[str, Any]]:
    """Actor options: one per GPU, else one per node holding all of its CPUs, or --actors N spread out."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpus = ray.cluster_resources().get("GPU", 0) if config.device != "cpu" else 0
    if config.actors:
        share = min(1.0, gpus / config.actors) if gpus else 0
        return [dict(num_cpus=1, num_gpus=share, scheduling_strategy="SPREAD")] * config.actors
    if gpus >= 1:
        return [dict(num_cpus=1, num_gpus=1)] * int(gpus)
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
    if not nodes:
        raise DfscanError("the Ray cluster has no node with a free CPU (see `ray status`)")
    # Soft affinity: a worker whose node is gone is restarted elsewhere.
    return [dict(num_cpus=n["Resources"]["CPU"],
                 scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=True)) for n in nodes]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _ray_message(exc: BaseException) -> str:
    """The one line of a Ray error that says what went wrong: Ray's messages carry whole tracebacks, whose
    first line (errors.first_line) is Ray's preamble and whose last `...Error:` line is the cause; that line
    is kept, without its exception's module path."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    line = next((ln for ln in reversed(lines) if "Error:" in ln or "Exception:" in ln), None) or first_line(exc)
    return re.sub(r"^(?:\w+\.)+(?=\w+(?:Error|Exception):)", "", line)[:300]  # dfscan.common.errors.ModelError: ...
