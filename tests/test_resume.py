"""Nothing lost: kill a real scan at any moment, run it again, get the same report."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import frames_for, write_opencv
from dfscan import ScanConfig, scan
from dfscan.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
N = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("many")
    for i in range(N):
        write_opencv(d / f"clip{i}.mp4", frames_for(300, tint=("red", "blue")[i % 2], seed=10 + i))
    return d


def command(folder, model, store, out):
    return [sys.executable, "-m", "dfscan", "scan", str(folder), "--model", str(model), "--store", str(store),
            "--csv", str(out), "-q"]


def run(args):
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=300)


def stored(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.fixture(scope="module")
def reference(folder, colour_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    done = run(command(folder, colour_model, d / "s.sqlite", d / "ref.csv"))
    assert done.returncode == 1, done.stderr
    return (d / "ref.csv").read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_scan_resumes_to_the_same_report(folder, colour_model, reference, tmp_path, sig):
    store, out = tmp_path / "s.sqlite", tmp_path / "out.csv"
    proc = subprocess.Popen(command(folder, colour_model, store, out), env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while stored(store) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the scan finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and not out.exists()  # no half-written report under the final name
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "run the same command again" in err
    kept = stored(store)
    assert 2 <= kept < N
    done = run(command(folder, colour_model, store, out))
    assert done.returncode == 1, done.stderr
    assert out.read_text() == reference  # same rows, same order, each video exactly once
    assert stored(store) == N
    assert not Path(str(out) + ".partial").exists()


def test_two_scans_at_once_share_the_store(folder, colour_model, reference, tmp_path):
    store = tmp_path / "s.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(command(folder, colour_model, store, tmp_path / f"{i}.csv"), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == 1
    assert (tmp_path / "0.csv").read_text() == reference == (tmp_path / "1.csv").read_text()
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == N


def test_changed_file_is_scanned_again_and_settings_are_part_of_the_key(folder, colour_model, tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    clip = d / "a.mp4"
    clip.write_bytes((folder / "clip0.mp4").read_bytes())  # red: FAKE
    cfg = ScanConfig(model=str(colour_model), store=str(tmp_path / "s.sqlite"))
    first = scan([d], cfg).results[0]
    again = scan([d], cfg).results[0]
    assert not first.cached and again.cached and again.score == first.score
    renamed = tmp_path / "same-bytes.keras"  # a copy of the model under another name: results reused,
    renamed.write_bytes(colour_model.read_bytes())  # but the report names the model used now
    moved = scan([d], ScanConfig(model=str(renamed), store=cfg.store)).results[0]
    assert moved.cached and moved.model.startswith("same-bytes.keras sha256:")
    clip.write_bytes((folder / "clip1.mp4").read_bytes())  # same name, new content: blue, REAL
    changed = scan([d], cfg).results[0]
    assert not changed.cached and changed.verdict.value == "REAL"
    other = scan([d], ScanConfig(model=str(colour_model), store=cfg.store, aggregate="max")).results[0]
    assert not other.cached
    forced = scan([d], ScanConfig(model=str(colour_model), store=cfg.store, rescan=True)).results[0]
    assert not forced.cached
    assert ResultStore(cfg.store).count() == 3  # red, blue, blue with max


def test_errors_are_not_stored_so_they_are_retried(tmp_path, colour_model):
    d = tmp_path / "v"
    d.mkdir()
    (d / "bad.mp4").write_bytes(b"nope" * 100)
    cfg = ScanConfig(model=str(colour_model), store=str(tmp_path / "s.sqlite"))
    assert scan([d], cfg).results[0].verdict.value == "ERROR"
    assert ResultStore(cfg.store).count() == 0
