"""`dfscan watch` as a real process on a temporary folder, with the real watchdog observer and the
polling one: files copied in, one written slowly in pieces, one broken, one replaced, one removed
before it was complete; a restart catches up; SIGTERM exits 0; no row lost or doubled."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import H264, frames_for, write_ffmpeg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("watch-clips")
    return {"red": write_ffmpeg(root / "red.mp4", frames_for(60, tint="red", seed=1), H264),
            "blue": write_ffmpeg(root / "blue.mp4", (f[:, ::-1] for f in frames_for(60, tint="blue", seed=2)), H264),
            "other": write_ffmpeg(root / "other.mp4", frames_for(45, tint="blue", seed=3), H264)}


def _start(folder: Path, out: Path, model: Path, poll: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "dfscan", "watch", str(folder), "--jsonl", str(out / "rows.jsonl"), "--csv",
            str(out / "rows.csv"), "--model", str(model), "--store", str(out / "store.sqlite"), "--settle", "0.5",
            "--workers", "2", *(["--poll", "0.3"] if poll else [])]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(out: Path) -> list[dict]:
    path = out / "rows.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_rows(out: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _rows(out)
        if len(rows) >= n:
            return rows
        if proc.poll() is not None:
            pytest.fail(f"the watcher exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"{len(_rows(out))} rows of {n} after {timeout} s")


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.mark.parametrize("poll", [False, True], ids=["watchdog", "polling"])
def test_watch_scans_each_complete_file_exactly_once(clips, colour_model, tmp_path, poll):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    (folder / "early.mp4").write_bytes(clips["red"].read_bytes())  # there before the watcher: caught up on
    proc = _start(folder, out, colour_model, poll)
    try:
        _wait_rows(out, 1, proc)
        (folder / "copied.mp4").write_bytes(clips["blue"].read_bytes())
        (folder / "notes.txt").write_text("not a video")
        (folder / "broken.mp4").write_bytes(b"\x00not a video at all" * 100)
        gone = folder / "gone.mp4"
        gone.write_bytes(clips["red"].read_bytes()[:5000])
        gone.unlink()  # removed before it was complete: never a row
        data = clips["other"].read_bytes()
        with open(folder / "slow.mp4", "wb") as fh:  # written in pieces, with pauses longer than --settle
            for i in range(3):
                fh.write(data[i * len(data) // 3: (i + 1) * len(data) // 3])
                fh.flush()
                time.sleep(1.5)
        rows = _wait_rows(out, 4, proc)
        (folder / "copied.mp4").write_bytes(clips["other"].read_bytes())  # replaced: new content, scanned again
        rows = _wait_rows(out, 5, proc)
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    by_name = {}
    for r in rows:
        by_name.setdefault(Path(r["path"]).name, []).append(r)
    assert sorted(by_name) == ["broken.mp4", "copied.mp4", "early.mp4", "slow.mp4"]
    assert by_name["broken.mp4"][0]["verdict"] == "ERROR"
    slow = by_name["slow.mp4"]
    assert len(slow) == 1 and slow[0]["verdict"] != "ERROR", slow  # never scanned half-written
    assert [r["verdict"] for r in by_name["copied.mp4"]] == ["REAL", "REAL"]
    assert by_name["copied.mp4"][0]["sha256"] != by_name["copied.mp4"][1]["sha256"]
    assert by_name["copied.mp4"][1]["seen_before"]["path"].endswith("slow.mp4")  # the same content as slow.mp4

    # Down for a while: a file arrives; the restarted watcher catches up, and writes nothing twice.
    (folder / "while-down.mp4").write_bytes(clips["red"].read_bytes())
    proc = _start(folder, out, colour_model, poll)
    try:
        rows = _wait_rows(out, 6, proc)
        time.sleep(3)  # time to (wrongly) write anything again
        assert _stop(proc, signal.SIGINT) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = _rows(out)
    assert [Path(r["path"]).name for r in rows[5:]] == ["while-down.mp4"]
    keys = [(r["path"], r["sha256"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6
    csv_lines = (out / "rows.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and csv_lines[0].endswith(",schema")  # one header, one row per JSON line


def test_sigterm_mid_burst_loses_and_doubles_nothing(clips, colour_model, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    for i in range(12):
        (folder / f"clip{i:02}.mp4").write_bytes(clips["red" if i % 2 else "blue"].read_bytes() + bytes([i]))
    proc = _start(folder, out, colour_model, poll=False)
    try:
        _wait_rows(out, 2, proc)
        assert _stop(proc) == 0
        before = len(_rows(out))
        proc = _start(folder, out, colour_model, poll=False)
        _wait_rows(out, 12, proc)
        time.sleep(2)
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    names = [Path(r["path"]).name for r in _rows(out)]
    assert before < 12 and sorted(names) == [f"clip{i:02}.mp4" for i in range(12)]
    assert os.path.getsize(out / "rows.jsonl") > 0
