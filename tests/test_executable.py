"""The standalone executable: how a frozen dfscan finds its files, and a real PyInstaller build.

The build test is marked slow (a few minutes: PyInstaller analyses Keras and OpenVINO): the quick suite
leaves it out, `.ci/run` runs it (`python -m pytest -m slow`). The build carries no TensorFlow (Keras runs on OpenVINO). It runs the result as a user without Python would: a
clean environment with nothing on PATH, a fresh HOME, another working directory.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import pytest

from dfscan import __version__
from dfscan.scanning.faces import detector_weights
from dfscan.classifier.registry import frozen_models, registry_file, resolve_model
from gui_helpers import display  # noqa: F401 - a fixture: an X display (Xvfb) for the windowed executable

ROOT = Path(__file__).resolve().parents[1]
EXE_NAME = "dfscan.exe" if os.name == "nt" else "dfscan"
BUILD_TIMEOUT_S = 1200
REFERENCE_PREP = {"input_size": [224, 224], "color_order": "BGR", "scale": "0..1", "resize": "stretch"}


def with_sidecar(model: Path, folder: Path, stem: str, name: str) -> Path:
    """A copy of `model` as folder/stem.keras, named `name` by its sidecar JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{stem}.keras"
    shutil.copy(model, copy)
    sidecar = {"name": name, "threshold": 0.5, "preprocessing": REFERENCE_PREP}
    copy.with_suffix(".json").write_text(json.dumps(sidecar))
    return copy


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    """Pretend to be a PyInstaller one-folder build: dist/dfscan/dfscan and dist/dfscan/_internal."""
    app = tmp_path / "dist" / "dfscan"
    bundle = app / "_internal"
    bundle.mkdir(parents=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setattr(sys, "executable", str(app / EXE_NAME))
    for var in ("DFSCAN_REGISTRY", "DFSCAN_FACE_DETECTOR"):
        monkeypatch.delenv(var, raising=False)
    return app


def test_a_source_run_has_no_models_of_its_own():
    assert frozen_models() == []


def test_frozen_build_finds_registry_and_detector_inside_the_bundle(frozen):
    bundle = frozen / "_internal"
    assert registry_file() == bundle / "dfscan" / "models" / "registry.json"
    assert detector_weights() == bundle / "dfscan" / "data" / "yunet" / "face_detection_yunet_2026may.onnx"


def test_frozen_default_model_beside_the_executable_then_bundled(frozen, colour_model):
    assert frozen_models() == []
    bundled = with_sidecar(colour_model, frozen / "_internal" / "models", "bundled", "bundled-colour")
    assert frozen_models() == [bundled]
    assert resolve_model(None).name == "bundled-colour"
    beside = with_sidecar(colour_model, frozen, "dfscan", "beside-colour")
    assert frozen_models() == [beside, bundled]
    assert resolve_model(None).name == "beside-colour"
    assert resolve_model(str(bundled)).name == "bundled-colour"  # --model still wins


# ---------------------------------------------------------------- the real build


def clean_env(home: Path, path_dir: Path) -> dict[str, str]:
    """What `env -i` leaves, plus a minimal PATH (an empty folder: not even a system python)."""
    env = {"PATH": str(path_dir), "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    if os.name == "nt":  # Windows programs need these to start at all
        env.update({k: os.environ[k] for k in ("SYSTEMROOT", "TEMP", "TMP") if k in os.environ})
    return env


@pytest.fixture(scope="module")
def built(colour_model):
    """dist/dfscan/dfscan built from this checkout with `pyinstaller build_exe.spec`, with a bundled model."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed (pip install '.[exe]', or the 'test' extra)")
    work = Path(tempfile.mkdtemp(prefix="dfscan-exe-"))  # removed after: a build is ~0.5 GB
    try:
        bundled = with_sidecar(colour_model, work / "to-bundle", "colour", "bundled-colour")
        log = work / "pyinstaller.log"
        # A HOME of its own: PyInstaller's analysis imports OpenVINO's converter, whose usage reports would
        # leave a client id in ~/intel (PyInstaller keeps its cache where it was)
        (work / "build-home").mkdir()
        env = {**os.environ, "DFSCAN_BUNDLE_MODEL": str(bundled), "HOME": str(work / "build-home"),
               "PYINSTALLER_CONFIG_DIR": os.environ.get("PYINSTALLER_CONFIG_DIR",
                                                        str(Path.home() / ".cache" / "pyinstaller"))}
        cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(work / "dist"),
               "--workpath", str(work / "build"), str(ROOT / "build_exe.spec")]
        started = time.perf_counter()
        with open(log, "w") as out:
            done = subprocess.run(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=BUILD_TIMEOUT_S)
        print(f"\nPyInstaller build: {time.perf_counter() - started:.0f} s")
        assert done.returncode == 0, log.read_text()[-5000:]
        exe = work / "dist" / "dfscan" / EXE_NAME
        assert exe.is_file()
        (work / "home").mkdir()
        (work / "elsewhere").mkdir()
        (work / "empty-bin").mkdir()
        yield {"exe": exe, "work": work, "env": clean_env(work / "home", work / "empty-bin")}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_frozen(built, *args, env_extra=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**built["env"], **(env_extra or {})}
    return subprocess.run([str(built["exe"]), *map(str, args)], cwd=built["work"] / "elsewhere", env=env,
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def verdicts(path: Path) -> dict[str, str]:
    return {Path(r["path"]).name: r["verdict"] for r in read_csv(path)}


@pytest.mark.slow
def test_frozen_build_has_no_tensorflow_and_fits_in_800_mb(built):
    internal = built["exe"].parent / "_internal"
    size = sum(f.stat().st_size for f in built["exe"].parent.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"\nstandalone build: {size / 1e6:.0f} MB")
    assert size <= 800e6
    assert not (internal / "tensorflow").exists() and not list(internal.glob("libtensorflow*"))
    assert "MIT License" in (internal / "dfscan" / "data" / "yunet" / "LICENSE").read_text()  # YuNet's licence


@pytest.mark.slow
def test_frozen_version_and_help_are_fast(built):
    for args, expected in ((["--version"], f"dfscan, version {__version__}"), (["--help"], "scan"),
                           (["scan", "--help"], "--num-frames")):
        started = time.perf_counter()
        done = run_frozen(built, *args)
        took = time.perf_counter() - started
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
        # TensorFlow alone takes seconds to import: a slow start means a heavy import crept in
        assert took < 3, f"dfscan {' '.join(args)} took {took:.2f} s"


@pytest.mark.slow
def test_frozen_scan_with_a_local_model(built, clips, colour_model):
    out = built["work"] / "elsewhere" / "report.csv"
    done = run_frozen(built, "scan", clips["root"], "--model", colour_model, "--csv", out)
    assert done.returncode == 1, done.stderr  # a FAKE is present
    assert verdicts(out) == {"fake_red.mp4": "FAKE", "real_blue.avi": "REAL", "short_blue.webm": "REAL",
                             "fake_h264.MP4": "FAKE", "no_face.mp4": "NO_FACE"}
    rows = read_csv(out)
    assert all(r["model"].startswith("colour.keras sha256:") for r in rows)
    fake = next(r for r in rows if r["path"].endswith("fake_red.mp4"))
    assert float(fake["score"]) > 0.9 and fake["frame_indices"] == "0 30 60 90 120 150 180 210 240 270"
    # The seen-before fingerprints need imagehash and Pillow in the build: a failing hash is skipped quietly
    store = Path(built["env"]["HOME"]) / ".local" / "share" / "dfscan" / "results.sqlite"
    with closing(sqlite3.connect(store)) as db:
        assert db.execute("SELECT COUNT(*) FROM fingerprints WHERE length(hashes) > 0").fetchone()[0] >= 4
    assert fake["decoder"] == "pyav"  # PyAV and its FFmpeg libraries made it into the build
    # OpenVINO's CPU plugin and frontends made it too (converted the model, read the detector)
    assert "OpenVINO" in " ".join(done.stdout.split()), done.stdout[-2000:]
    assert "FAKE: 2" in done.stdout and "NO_FACE: 1" in done.stdout  # the rich table printed without a locale
    assert "Traceback" not in done.stderr and "AutoGraph" not in done.stderr
    assert not (Path(built["env"]["HOME"]) / "intel").exists()  # no OpenVINO usage reports from the build either


@pytest.mark.slow
def test_frozen_default_is_the_bundled_model_then_one_beside_the_executable(built, clips, colour_model):
    out = built["work"] / "elsewhere" / "bundled.csv"
    done = run_frozen(built, "scan", clips["fake_mp4"], "--csv", out, "-q")
    assert done.returncode == 1, done.stderr
    (row,) = read_csv(out)
    assert row["verdict"] == "FAKE" and row["model"].startswith("bundled-colour sha256:")
    beside = with_sidecar(colour_model, built["exe"].parent, "dfscan", "beside-colour")
    try:
        out = built["work"] / "elsewhere" / "beside.csv"
        done = run_frozen(built, "scan", clips["real_avi"], "--csv", out, "-q")
        assert done.returncode == 0, done.stderr
        (row,) = read_csv(out)
        assert row["verdict"] == "REAL" and row["model"].startswith("beside-colour sha256:")
    finally:
        beside.unlink()
        beside.with_suffix(".json").unlink()


@pytest.mark.slow
def test_frozen_registry_model_from_an_offline_hub_cache(built, clips, colour_model):
    commit = "0123456789abcdef0123456789abcdef01234567"
    cache = built["work"] / "hub"
    repo = cache / "models--fc63--deepfake-detection-cnn_v2"
    (repo / "snapshots" / commit).mkdir(parents=True)
    shutil.copy(colour_model, repo / "snapshots" / commit / "best_model.keras")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    out = built["work"] / "elsewhere" / "hub.csv"
    done = run_frozen(built, "scan", clips["fake_mp4"], "--model", "reference", "--csv", out, "-q",
                      env_extra={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 1, done.stderr
    (row,) = read_csv(out)
    assert row["model"].startswith(f"dfdc-part34-effnetb0@{commit[:12]} sha256:")
    listed = run_frozen(built, "models", "list", env_extra={"HF_HUB_CACHE": str(cache)})
    assert listed.returncode == 0 and "dfdc-part34" in listed.stdout  # the table wraps long names
    assert "default (no --model)" in listed.stdout  # the bundled model, not the registry's


@pytest.mark.slow
def test_frozen_windowed_app_opens_its_window_and_scans(built, clips, colour_model, display):
    """dfscan-app, the build's second executable, opens the window (under Xvfb) and scans the folder it is given;
    the .desktop launcher sits beside it."""
    from gui_helpers import window_ids

    app = built["exe"].parent / ("dfscan-app.exe" if os.name == "nt" else "dfscan-app")
    assert app.is_file()
    desktop = (built["exe"].parent / "dfscan.desktop").read_text()
    assert "Exec=dfscan-app %F" in desktop and "Terminal=false" in desktop
    env = {**built["env"], "DISPLAY": display}
    proc = subprocess.Popen([str(app), str(clips["fake_mp4"]), "--model", str(colour_model)],
                            cwd=built["work"] / "elsewhere", env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        assert window_ids(env, "^dfscan: find deepfaked", proc, timeout=120), proc.stdout.read1() \
            if proc.poll() is not None else "no window"
    finally:
        proc.terminate()
        proc.wait(10)
