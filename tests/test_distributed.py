"""The ray engine on a real Ray cluster: a head and a second node on 127.0.0.1, started and stopped here.

Scores may differ from the local engine's only by float rounding (crops are batched differently),
so they are compared within TOLERANCE; verdicts and everything else must be equal.
"""
import csv
import importlib.util
import io
import json
import logging
import os
import stat
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import frames_for, write_opencv
from dfscan import ScanConfig, Verdict, scan
from dfscan.scanning.distributed import RayScanner, _model_copy
from dfscan.common.errors import DfscanError
from dfscan.classifier.model_info import describe_local_model
from dfscan.reports.writers import to_csv_text

# Ray itself is imported where it is used: importing it costs every test run, not only these tests.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="the ray engine is an optional extra: pip install '.[ray]' in dfscan's folder")

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_without_an_address_a_private_ray_starts_and_stops_with_the_scan(clips, colour_model, tmp_path):
    out = tmp_path / "private.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dfscan", "scan", str(clips["fake_mp4"]), str(clips["real_avi"]), "--engine", "ray",
         "--model", str(colour_model), "--no-store", "--csv", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    assert [r["verdict"] for r in read_rows(out.read_text())] == ["FAKE", "REAL"]
    assert "on Ray: 1 worker on 1 node (CPU (OpenVINO" in stdout.replace("\n", " ")
    left = live_in_session(proc.pid)
    assert left == "", f"Ray processes outlived the scan:\n{left}"  # the scan stopped what it started


def live_in_session(sid: int, settle_s: float = 5.0) -> str:
    """The processes still running in session `sid`, after up to `settle_s` for exiting ones to finish.

    An exited child that its parent has not reaped yet shows as <defunct> (state Z) for a moment
    under load: it has ended, so it does not count; a leaked Ray daemon would stay for good.
    """
    deadline = time.monotonic() + settle_s
    while True:
        ps = subprocess.run(["ps", "-o", "pid=,stat=,args=", "--sid", str(sid)], capture_output=True, text=True).stdout
        live = "\n".join(line for line in ps.splitlines() if line.split()[1:2] and not line.split()[1].startswith("Z"))
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.2)


def test_an_address_where_nothing_listens_fails_in_seconds(clips, colour_model, tmp_path, capsys):
    from dfscan.cli import main

    port = free_port()  # closed again: nothing listens there
    args = ["scan", str(clips["fake_mp4"]), "--engine", "ray", "--address", f"ray://127.0.0.1:{port}",
            "--model", str(colour_model), "--no-store", "--csv", str(tmp_path / "x.csv")]
    assert main(args) == 2
    assert f"nothing answers at 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cluster():
    """Ray's own test cluster (ray.cluster_utils): a head node and one more node, one CPU each."""
    from ray.cluster_utils import Cluster

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT)  # Ray's own processes (the client server) import this checkout
    client_port = free_port()
    head = dict(node_ip_address="127.0.0.1", num_cpus=1, include_dashboard=False, ray_client_server_port=client_port)
    c = Cluster(initialize_head=True, head_node_args=head)
    try:
        c.add_node(node_ip_address="127.0.0.1", num_cpus=1)
        c.wait_for_nodes()
        c.client_address = f"ray://127.0.0.1:{client_port}"
        yield c
    finally:
        c.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="class")
def ray_scanner(cluster, colour_model, tmp_path_factory):
    """Workers take every CPU of their node: they are stopped before the next tests start theirs."""
    store = tmp_path_factory.mktemp("ray-store") / "results.sqlite"
    config = ScanConfig(model=str(colour_model), engine="ray", address=cluster.address, store=str(store))
    with RayScanner(config) as scanner:
        yield scanner


def assert_same(local, remote):
    assert (remote.path, remote.verdict, remote.frames, remote.frames_with_face, remote.sha256, remote.error,
            remote.model, remote.width, remote.height, remote.decoder, remote.notes) == \
        (local.path, local.verdict, local.frames, local.frames_with_face, local.sha256, local.error,
         local.model, local.width, local.height, local.decoder, local.notes)
    assert (remote.score is None) == (local.score is None)
    if local.score is not None:
        assert remote.score == pytest.approx(local.score, abs=TOLERANCE)
    assert [(f.frame, f.box) for f in remote.faces] == [(f.frame, f.box) for f in local.faces]
    assert [f.score for f in remote.faces] == pytest.approx([f.score for f in local.faces], abs=TOLERANCE)
    # The same people, with the same frames, boxes, verdicts and weakness (issue 22).
    assert [(p.person, p.frames, p.boxes, p.verdict, p.weak) for p in remote.people] == \
        [(p.person, p.frames, p.boxes, p.verdict, p.weak) for p in local.people]
    assert [p.score for p in remote.people] == pytest.approx([p.score for p in local.people], abs=TOLERANCE)


def stored_verdicts(store: Path) -> dict[str, str]:
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT sha256, json_extract(result, '$.verdict') FROM results").fetchall()
    return dict(rows)


@pytest.mark.slow
class TestOneScanOfTheCluster:
    """Two tests sharing one set of workers (loading models is the slow part)."""

    def test_a_two_node_cluster_gives_the_local_engines_results(self, ray_scanner, clips, colour_model, tmp_path,
                                                                monkeypatch):
        local = scan([clips["root"]], ScanConfig(model=str(colour_model), store=str(tmp_path / "local.sqlite")))
        found = ray_scanner.discover([clips["root"]])
        remote = list(ray_scanner.iter_scan(found))
        assert len(remote) == len(local.results) == 5
        for a, b in zip(local.results, remote):
            assert_same(a, b)
        assert sum(len(r.people) for r in remote) >= 3  # the clips with a face have their person
        assert ray_scanner.device.startswith("Ray: 2 workers on 2 nodes (CPU (OpenVINO ")
        # The driver's store holds what a local scan stores, and a second scan takes it from there.
        assert stored_verdicts(ray_scanner.store.path) == stored_verdicts(tmp_path / "local.sqlite")
        # The workers reuse the stored results, as a local scan does: the driver does not look them up again.
        def no_second_lookup(*args):
            raise AssertionError("the driver looked a stored result up again")

        monkeypatch.setattr(ray_scanner.store, "lookup", no_second_lookup)
        again = list(ray_scanner.iter_scan(found))
        assert [r.cached for r in again] == [True] * 5
        assert [r.path for r in again] == [f.path for f in found]
        for a, b in zip(local.results, again):
            assert_same(a, b)
        with sqlite3.connect(ray_scanner.store.path) as db:
            kept = {sha: (json.loads(text), when) for sha, text, when in
                    db.execute("SELECT sha256, result, updated FROM results")}
        for r in again:  # each reused row is the stored one, with its scores and when it was computed
            if r.verdict is not Verdict.ERROR:
                stored, when = kept[r.sha256]
                assert (r.score, [f.score for f in r.faces], r.scanned_at) == \
                    (stored["score"], [f["score"] for f in stored["faces"]], when)

    def test_relative_paths_mean_the_drivers_folder_and_stay_relative(self, ray_scanner, clips, monkeypatch):
        monkeypatch.chdir(clips["root"])  # the workers' processes have working folders of their own
        results = list(ray_scanner.iter_scan(ray_scanner.discover(["sub"])))
        assert [(str(r.path), r.verdict) for r in results] == [("sub/fake_h264.MP4", Verdict.FAKE),
                                                              ("sub/no_face.mp4", Verdict.NO_FACE)]

    def test_a_file_a_worker_cannot_read_is_an_error_naming_its_node(self, ray_scanner, clips, tmp_path):
        gone = tmp_path / "gone.mp4"
        gone.write_bytes(clips["real_avi"].read_bytes())
        found = ray_scanner.discover([gone, clips["fake_mp4"]])
        gone.unlink()  # the driver saw it, the worker's node does not: as with storage that is not shared
        bad, good = ray_scanner.iter_scan(found)
        assert bad.verdict is Verdict.ERROR
        assert bad.error.startswith("cannot read file: No such file or directory on node")
        assert any(f"Ray node {w.info.node_id[:12]}" in bad.error for w in ray_scanner.workers)
        assert "shared storage" in bad.error
        assert good.verdict is Verdict.FAKE


@pytest.mark.slow
def test_cli_through_ray_client_with_paths_from_stdin(cluster, clips, colour_model, tmp_path):
    listing = f"# queue\n{clips['fake_h264']}\n\n{clips['real_avi']}\n{clips['noface_mp4']}\n"
    out = tmp_path / "ray.csv"
    done = subprocess.run(
        [sys.executable, "-m", "dfscan", "scan", "--engine", "ray", "--address", cluster.client_address,
         "--from-file", "-", "--model", str(colour_model), "--no-store", "--csv", str(out), "-q"],
        input=listing, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 1, done.stderr
    local = scan([clips["fake_h264"], clips["real_avi"], clips["noface_mp4"]], ScanConfig(model=str(colour_model)))
    got, want = read_rows(out.read_text()), read_rows(to_csv_text(local.results))
    assert [r["path"] for r in got] == [r["path"] for r in want]
    for g, w in zip(got, want):
        assert g.pop("score") == pytest.approx(w.pop("score"), abs=TOLERANCE)
        assert g.pop("max_face_score") == pytest.approx(w.pop("max_face_score"), abs=TOLERANCE)
        g.pop("face_scores"), w.pop("face_scores")  # 4 decimals: compared through the scores above
        g.pop("scanned_at"), w.pop("scanned_at")  # when each scan computed it
        assert g == w


def ready_again(handle, timeout_s: float):
    """The WorkerInfo of a Ray actor once it answers again (Ray says it is unavailable while it restarts)."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(handle.ready.remote(), timeout=timeout_s)
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def read_rows(text: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        for key in ("score", "max_face_score"):
            r[key] = float(r[key]) if r[key] else None
    return rows


@pytest.fixture(scope="module")
def twelve(tmp_path_factory):
    folder = tmp_path_factory.mktemp("twelve")
    for i in range(12):
        write_opencv(folder / f"clip{i:02d}.mp4", frames_for(300, tint=("red", "blue")[i % 2], seed=40 + i))
    return folder


@pytest.mark.slow
def test_a_worker_killed_mid_scan_loses_nothing_and_reports_nothing_twice(cluster, twelve, colour_model, tmp_path,
                                                                         caplog, monkeypatch):
    store = tmp_path / "results.sqlite"
    config = ScanConfig(model=str(colour_model), engine="ray", address=cluster.address, store=str(store), workers=1)
    # A module-scoped fixture elsewhere in this xdist worker may have run the CLI, whose logging setup
    # stops dfscan's records reaching the root logger (and caplog): see them here whatever ran before.
    caplog.set_level(logging.WARNING, logger="dfscan")
    monkeypatch.setattr(logging.getLogger("dfscan"), "propagate", True)
    results, victims = [], []
    with RayScanner(config) as scanner:
        found = scanner.discover([twelve])
        dispatch = scanner._dispatch

        def dispatch_then_kill(p):
            """Kill a worker the moment it has been handed videos: it cannot have answered yet (killing it
            after an answer came back raced with its next chunk finishing on a busy machine)."""
            dispatch(p)
            holding = [w for w in scanner.workers if w.calls and w.info]
            if not victims and holding:
                victims.append((holding[0], holding[0].info, holding[0].name))
                os.kill(holding[0].info.pid, signal.SIGKILL)

        scanner._dispatch = dispatch_then_kill
        results = list(scanner.iter_scan(found))
        victim, killed, name = victims[0]
        assert f"the Ray worker on {name} died" in caplog.text and "are sent again" in caplog.text
        back = ready_again(victim.handle, 180)  # Ray restarted the killed worker, which loaded the model again
        assert back.node_id == killed.node_id and back.pid != killed.pid
    assert [r.path for r in results] == [f.path for f in found]  # every video once, in discovery order
    assert [r.verdict for r in results] == [(Verdict.FAKE, Verdict.REAL)[i % 2] for i in range(12)]
    rows = read_rows(to_csv_text(results))
    assert sorted(r["path"] for r in rows) == sorted(str(twelve / f"clip{i:02d}.mp4") for i in range(12))
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM results").fetchone() == (12, 12)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
def test_a_nodes_model_copy_is_private_checked_and_replaced_when_altered(colour_model, tmp_path, monkeypatch):
    monkeypatch.setenv("DFSCAN_CACHE_DIR", str(tmp_path / "cache"))
    info, data = describe_local_model(colour_model), colour_model.read_bytes()
    copy = _model_copy(info, data)
    assert copy.parent == tmp_path / "cache" / "models" and copy.name.startswith(info.sha256)
    assert copy.read_bytes() == data
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    first = copy.stat().st_ino
    assert _model_copy(info, data).stat().st_ino == first  # a sound copy is shared, not written again
    copy.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # altered after it was written
    assert _model_copy(info, data).read_bytes() == data
    os.chmod(copy.parent, 0o755)  # dfscan's own folder is made private again
    _model_copy(info, data)
    assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    monkeypatch.setenv("DFSCAN_CACHE_DIR", str(tmp_path / "planted"))
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / "models").symlink_to(elsewhere)  # a link is not a folder dfscan made
    with pytest.raises(DfscanError, match="not a folder private to this user"):
        _model_copy(info, data)
    assert not any(elsewhere.iterdir())
