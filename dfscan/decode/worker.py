"""Decoding in worker processes, each video with a deadline: a decoder that hangs is killed, not waited for.

A crafted or merely unlucky file can make a decoder spin for good (decord's get_batch on an
MPEG-TS with B-frames) or take all the memory; a thread cannot be stopped, a process can. So a
scan decodes in worker processes: the parent sends a job, the worker sends each decoded frame back
as soon as it has it (the parent runs `keep` on it: face detection stays in the parent, and only one
full frame is in flight), then the clip. Past the deadline the worker is killed and replaced, and
the video becomes an ERROR row ("decoding did not finish in N s"); the scan goes on.

Workers are started once (forkserver where there is one, else spawn) and reused, one per decoding
thread; each caps its address space (WORKER_MEMORY) so that one hostile file cannot take the machine.
"""
from __future__ import annotations

import glob
import itertools
import logging
import os
import signal
import tempfile
import threading
import time
from typing import Any, Callable

from ..common.errors import VideoError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0  # a video's deadline: this, plus PER_FRAME_S per frame asked ...
PER_FRAME_S = 0.05  # ... at full HD (larger frames count for more)
FULL_HD = 1920 * 1080
# Address space a decoding process may reserve (RLIMIT_AS), not memory it uses: 1080p decoding reserved
# 1.2 GB on 2 cores (0.3 GB resident), and glibc reserves 64 MB arenas per thread, so the cap grows with the cores.
WORKER_MEMORY = max(8 << 30, (4 << 30) + (os.cpu_count() or 1) * (256 << 20))
# None: forkserver where there is one, else spawn. Tests that patch dfscan's limits in the scanning
# process set "fork", so that its workers inherit the patches.
START_METHOD: str | None = None
SLOW_DECODE_ENV = "DFSCAN_TEST_SLOW_DECODE"  # test-only: a worker sleeps on files whose name ends with this


class DecodeTimeout(VideoError):
    """The decoder overran the video's deadline and was killed."""


def default_timeout(frames_asked: int, width: int = 0, height: int = 0) -> float:
    """The deadline of a video: DEFAULT_TIMEOUT_S plus PER_FRAME_S per full-HD frame asked."""
    scale = max(1.0, width * height / FULL_HD)
    return DEFAULT_TIMEOUT_S + PER_FRAME_S * frames_asked * scale


class _Worker:
    def __init__(self):
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context(START_METHOD or ("forkserver" if "forkserver" in methods else "spawn"))
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(child, WORKER_MEMORY), daemon=True, name="dfscan-decode")
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()
        for leftover in glob.glob(os.path.join(tempfile.gettempdir(), f"dfscan-stream-{self.process.pid}-*")):
            try:
                os.unlink(leftover)
            except OSError:
                pass


peak_rss = 0  # the most a decoding worker's resident memory grew since it started, in bytes (Linux; 0 elsewhere)
_start_rss = 0  # in a worker: its resident memory when it started
_idle: list[_Worker] = []
_lock = threading.Lock()


def _acquire() -> _Worker:
    with _lock:
        while _idle:
            worker = _idle.pop()
            if worker.process.is_alive():
                return worker
            worker.kill()
    return _Worker()


def _release(worker: _Worker) -> None:
    with _lock:
        _idle.append(worker)


def shutdown() -> None:
    """Stop the idle workers (they also end with this process: they are daemons and read EOF)."""
    with _lock:
        while _idle:
            _idle.pop().kill()


def read_in_worker(path: str, spec, backend: str, threads: int, keep: Callable[[Any], Any] | None,
                   inspect: Callable[[Any], Any] | None, timeout: float | None):
    """source.read_frames in a worker process, within `timeout` seconds (None: default_timeout).

    `inspect` must be picklable (a module-level function); `keep` runs here, and its time is not
    counted against the deadline."""
    asked = spec.count or len(spec.indices)
    limit = timeout if timeout is not None else default_timeout(asked)
    worker = _acquire()
    try:
        slow = os.environ.get(SLOW_DECODE_ENV)  # read here: a worker's environment is its start's
        worker.conn.send((os.fspath(path), spec, backend, threads, inspect, bool(slow and path.endswith(slow))))
        outcome = _receive(worker, keep, limit, scaled=timeout is None, asked=asked)
    except BaseException:
        worker.kill()  # mid-job (a timeout, a failing keep, Ctrl-C): its state is unknown
        raise
    _release(worker)  # it answered: ready for the next video, whatever it said about this one
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def check_in_worker(path: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """container.open_checked in a worker process, within `timeout` seconds: FFmpeg's open of an untrusted
    file runs where it can be killed, as decoding does (files.video_sha256 checks big files before hashing)."""
    worker = _acquire()
    try:
        slow = os.environ.get(SLOW_DECODE_ENV)
        worker.conn.send((None, os.fspath(path), bool(slow and os.fspath(path).endswith(slow))))  # None: a check
        if not worker.conn.poll(timeout):
            raise DecodeTimeout(f"checking the file's container did not finish in {timeout:g} s")
        kind, value = worker.conn.recv()
    except (EOFError, OSError) as exc:
        worker.kill()
        raise VideoError("the container check crashed: a damaged file, or one that needs more than "
                         f"{WORKER_MEMORY >> 30} GiB to open (limit)") from exc
    except BaseException:
        worker.kill()  # mid-job: its state is unknown
        raise
    _release(worker)
    if kind == "error":
        raise value


def _receive(worker: _Worker, keep, limit: float, scaled: bool, asked: int):
    """The clip, or the exception the worker answered with; DecodeTimeout, a crash or KeepError raise here."""
    kept: dict[int, Any] = {}
    deadline = time.monotonic() + limit
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not worker.conn.poll(remaining):
            raise DecodeTimeout(f"decoding did not finish in {limit:g} s (--video-timeout)")
        try:
            kind, *body = worker.conn.recv()
        except (EOFError, OSError) as exc:
            worker.process.join(5)
            raise VideoError(f"the decoder crashed (exit code {worker.process.exitcode}): a damaged file, "
                             f"or one that needs more than {WORKER_MEMORY >> 30} GiB to decode (limit)") from exc
        if kind == "frame":
            start = time.monotonic()
            kept[body[0]] = _kept(keep, body[1])
            deadline += time.monotonic() - start  # the caller's time, not the decoder's
        elif kind == "size" and scaled:  # frames larger than full HD get more time
            extra = default_timeout(asked, *body) - limit
            limit, deadline = limit + extra, deadline + extra
        elif kind == "peak":
            global peak_rss
            peak_rss = max(peak_rss, body[0])
        elif kind == "done":
            clip = body[0]
            clip.frames = [kept[n] for n in clip.frames]
            return clip
        elif kind == "error":
            return body[0]


def _kept(keep, frame):
    from .frames import KeepError

    if keep is None:
        return frame
    try:
        return keep(frame)
    except Exception as exc:  # as in this process (source._guarded): not the decoder's fault
        raise KeepError(f"{type(exc).__name__}: {exc}") from exc


def serve(conn, memory: int) -> None:
    """A worker's loop: decode each job sent, until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it kills us if it must)
    for stop in (signal.SIGTERM, signal.SIGHUP):  # a forked worker inherits the CLI's "stop as Ctrl-C" handlers:
        signal.signal(stop, signal.SIG_DFL)  # the parent's terminate() must end it quietly, not raise in it
    _cap_memory(memory)
    global _start_rss
    _start_rss = _status("VmRSS:")  # a forked worker starts with its parent's pages: only its growth is its own
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job[0] is None:  # a container check (check_in_worker), not a decode
            _check(conn, *job[1:])
        else:
            _run(conn, *job)


def _check(conn, path: str, slow: bool) -> None:
    from .container import open_checked

    try:
        if slow:  # test-only (SLOW_DECODE_ENV): an open that hangs
            time.sleep(3600)
        open_checked(path).close()
        answer = ("done", None)
    except VideoError as exc:
        answer = ("error", exc)
    except MemoryError:
        answer = ("error", VideoError(f"opening it needs more than {WORKER_MEMORY >> 30} GiB of memory (limit)"))
    except Exception as exc:  # noqa: BLE001 - a checker bug: said as such, the scan goes on
        answer = ("error", VideoError(f"the container could not be checked: {type(exc).__name__}: {exc}"))
    conn.send(answer)


def _run(conn, path: str, spec, backend: str, threads: int, inspect, slow: bool) -> None:
    from .frames import KeepError
    from .source import read_frames

    numbers = itertools.count()

    def keep(frame):
        number = next(numbers)
        conn.send(("frame", number, frame))
        return number

    def sized(width: int, height: int) -> None:
        conn.send(("size", width, height))

    try:
        if slow:  # test-only (SLOW_DECODE_ENV): a decoder that hangs
            time.sleep(3600)
        answer = ("done", read_frames(path, spec, backend, threads, keep, inspect, on_size=sized))
    except (VideoError, KeepError) as exc:
        answer = ("error", exc)
    except MemoryError:
        answer = ("error", VideoError(f"decoding needs more than {WORKER_MEMORY >> 30} GiB of memory (limit)"))
    except Exception as exc:  # a decoder bug: the parent reports it as such
        answer = ("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
    conn.send(("peak", max(0, _status("VmHWM:") - _start_rss)))
    conn.send(answer)


def _status(field: str) -> int:
    """A memory figure of this process in bytes, from /proc/self/status (0 where there is none)."""
    try:
        with open("/proc/self/status") as fh:
            return next((int(line.split()[1]) * 1024 for line in fh if line.startswith(field)), 0)
    except OSError:
        return 0


def _cap_memory(memory: int) -> None:
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):  # not allowed here: the worker runs without the cap
        log.debug("cannot cap the decoding worker's memory", exc_info=True)
