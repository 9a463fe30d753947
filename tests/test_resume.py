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


def command(folder, model, store, out, *more):
    return [sys.executable, "-m", "dfscan", "scan", str(folder), "--model", str(model), "--store", str(store),
            "--csv", str(out), "-q", *map(str, more)]


def run(args):
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=300)


def stored(store: Path) -> int:
    if not store.exists():
        return 0
    try:  # read-only: the test never creates the store itself (nor races the scan to it)
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # its tables do not exist yet
        return 0


def facts(csv_text: str) -> list[list[str]]:
    """A CSV report without the columns that say when and whether a result was computed in this run."""
    import csv

    rows = list(csv.reader(csv_text.splitlines()))
    keep = [i for i, name in enumerate(rows[0]) if name not in ("reused", "scanned_at")]
    assert len(keep) == len(rows[0]) - 2
    return [[row[i] for i in keep] for row in rows]


def reused(csv_text: str) -> list[str]:
    import csv

    return [row["reused"] for row in csv.DictReader(csv_text.splitlines())]


def interrupt_after(args, store: Path, at_least: int = 2, sig=signal.SIGINT, written: Path | None = None):
    """Start a scan, send `sig` once `at_least` videos are stored (and, given `written`, that many lines are
    in that file: rows reach a report after the store, in order), return (returncode, stderr)."""
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    def ready() -> bool:
        return stored(store) >= at_least and (written is None or lines_in(written) >= at_least)

    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the scan finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
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
    returncode, err = interrupt_after(command(folder, colour_model, store, out), store, sig=sig)
    assert returncode != 0 and not out.exists()  # no half-written report under the final name
    if sig == signal.SIGINT:
        assert returncode == 130, err
        assert "Run the same command again to finish: it reuses the" in " ".join(err.split())
    kept = stored(store)
    assert 2 <= kept < N
    done = run(command(folder, colour_model, store, out))
    assert done.returncode == 1, done.stderr
    assert facts(out.read_text()) == facts(reference)  # same rows, same order, each video exactly once
    assert reused(out.read_text()).count("yes") == kept  # and each says whether it was computed now
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
    assert facts((tmp_path / "0.csv").read_text()) == facts(reference) == facts((tmp_path / "1.csv").read_text())
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


def test_interrupted_jsonl_is_continued_by_the_same_command(folder, colour_model, reference, tmp_path):
    import csv
    import json

    store, out, jsonl = tmp_path / "s.sqlite", tmp_path / "out.csv", tmp_path / "live.jsonl"
    args = command(folder, colour_model, store, out, "--jsonl", jsonl)
    returncode, err = interrupt_after(args, store, written=jsonl)
    assert returncode == 130, err
    hint = " ".join(err.split())
    assert "the same command continues that file" in hint
    aside = Path(str(jsonl) + ".partial")
    before = aside.read_text().splitlines()
    assert 2 <= len(before) < N and not jsonl.exists()
    done = run(args)
    assert done.returncode == 1, done.stderr  # not "live.jsonl exists; pass --overwrite"
    lines = jsonl.read_text().splitlines()
    assert lines[: len(before)] == before  # continued, not rewritten
    paths = [json.loads(line)["path"] for line in lines]
    expected = [row["path"] for row in csv.DictReader(reference.splitlines())]
    assert paths == expected  # every video exactly once, in order
    assert facts(out.read_text()) == facts(reference) and not aside.exists()


def test_the_hint_under_rescan_does_not_promise_reuse(folder, colour_model, tmp_path):
    store, out = tmp_path / "s.sqlite", tmp_path / "out.csv"
    returncode, err = interrupt_after(command(folder, colour_model, store, out, "--rescan"), store)
    assert returncode == 130, err
    hint = " ".join(err.split())
    assert "scans every video again (--rescan)" in hint and "it reuses" not in hint


SWALLOWED = """
import os, signal, sys
from dfscan import cli
from dfscan.scanning import pipeline

scan = pipeline.Scanner.iter_scan


class Finalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10000):  # Python runs the handler here: its KeyboardInterrupt is "ignored" and lost
            pass


def iter_scan(self, found):
    for i, result in enumerate(scan(self, found)):
        yield result
        if i == 1:
            Finalizer()


pipeline.Scanner.iter_scan = iter_scan
sys.argv = ["dfscan", *sys.argv[1:]]
cli.run()
"""


def test_an_interrupt_lost_in_a_finalizer_still_stops_the_scan(folder, colour_model, tmp_path):
    """A Ctrl-C that Python delivers inside a __del__ raises a KeyboardInterrupt nobody sees; the scan stops anyway."""
    store, out = tmp_path / "s.sqlite", tmp_path / "out.csv"
    args = command(folder, colour_model, store, out)
    done = run([sys.executable, "-c", SWALLOWED, *args[3:]])
    assert "KeyboardInterrupt" in done.stderr  # Python's "Exception ignored in ... __del__" report
    assert done.returncode == 130, done.stderr
    assert 2 <= stored(store) < N and not out.exists()
