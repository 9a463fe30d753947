"""Issue 27, guards: settings and sidecars checked against their ranges, hub ids to the hub's grammar, a
store key that covers every score-changing field, JSON lines that stay lines, bounded frame choices;
and signals, overlapping scans and leftovers (real subprocesses)."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import frames_for, write_opencv
from dfscan.cli import main

ROOT = Path(__file__).resolve().parents[1]
N = 5


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


# --- JSON lines ---------------------------------------------------------------------------------------

def test_jsonl_lines_hold_no_unicode_line_breaks(tmp_path):
    from dfscan.reports.writers import jsonl_line
    from dfscan.results import Verdict, VideoResult

    odd = tmp_path / "a\u2028b\u2029c\u0085d.mp4"
    line = jsonl_line(VideoResult(odd, Verdict.ERROR, error="bad\u2028news"))
    assert len(line.splitlines()) == 1  # str.splitlines (and JavaScript) split at U+2028/2029/0085
    data = json.loads(line)
    assert data["path"].endswith("a\u2028b\u2029c\u0085d.mp4") and data["error"] == "bad\u2028news"


# --- frames: a usage error, not MemoryError -----------------------------------------------------------

def _limited_memory() -> None:
    limit = 3 << 30  # a range turned into a tuple needs 8 GB: the old code fails fast here, not by swapping
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("frames", ["0:999999999", "0:5000001:1", "4999999,5000000"])
def test_huge_frame_choices_are_usage_errors(tmp_path, frames):
    done = subprocess.run([sys.executable, "-m", "dfscan", "scan", "--frames", frames, str(tmp_path)],
                          capture_output=True, text=True, env=env(), timeout=120, preexec_fn=_limited_memory)
    assert done.returncode == 2, done.stderr
    assert "--frames" in done.stderr and "10,000" in done.stderr and "4,999,999" in done.stderr


def test_num_frames_has_the_same_bound():
    assert main(["scan", "--num-frames", "10001", "."]) == 2
    from dfscan.decode.read import FrameSpec

    with pytest.raises(ValueError, match="1 to 10,000"):
        FrameSpec.spread(10**9)


# --- numeric settings: one table of ranges, the range in every refusal ---------------------------------

@pytest.mark.parametrize("flag, value", [("--max-faces", "100000"), ("--detect-size", "100000"),
                                         ("--batch-size", "10000000"), ("--workers", "100000")])
def test_flags_have_an_upper_bound(flag, value, capsys):
    assert main(["scan", flag, value, "."]) == 2
    assert "range" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, shown", [("batch_size", 10**7, "1 to 1024"), ("workers", 0, "1 to 256"),
                                                 ("threshold", float("nan"), "0 to 1")])
def test_scan_config_says_the_range(field, value, shown):
    from dfscan import ScanConfig
    from dfscan.common.errors import ConfigError

    with pytest.raises(ConfigError, match=shown):
        ScanConfig(**{field: value})


def test_face_config_checks_its_settings():
    from dfscan.common.errors import ConfigError
    from dfscan.scanning.faces import FaceConfig

    with pytest.raises(ConfigError, match="64 to 4096"):
        FaceConfig(detect_size=0)
    with pytest.raises(ConfigError, match="1 to 100"):
        FaceConfig(max_faces=10**6)


# --- sidecars: a JSON list or object where a name belongs --------------------------------------------

@pytest.mark.parametrize("meta", [{"architecture": ["x"]}, {"architecture": {"a": 1}},
                                  {"preprocessing": {"scale": ["0..1"]}}, {"preprocessing": {"scale": {}}},
                                  {"preprocessing": {"color_order": ["BGR"]}}, {"output": {"p": 1}}])
def test_unhashable_sidecar_values_are_model_errors(colour_model, tmp_path, meta, capsys):
    model = tmp_path / "m.keras"
    shutil.copyfile(colour_model, model)
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert main(["models", "info", str(model)]) == 2  # was an internal error (TypeError: unhashable), exit 3
    assert "the metadata of m.keras" in capsys.readouterr().err


# --- hub ids and revisions: the hub's grammar, before the cache is read -------------------------------

@pytest.mark.parametrize("text", ["hf://o/r@../../../../dev/zero", "hf://o/r@refs/../../x", "hf://o/r@.x",
                                  "hf://../etc", "hf://o/..", "hf://o--x/r", "hf://o/r/../../x.keras",
                                  "hf://o/r/a//b.keras", "hf://o/r@a.lock"])
def test_hub_ids_outside_the_grammar_are_refused(text):
    from dfscan.common.errors import ModelError
    from dfscan.classifier.hub import HubRef

    with pytest.raises(ModelError):
        HubRef.parse(text)


@pytest.mark.parametrize("text", ["hf://owner/repo", "hf://o.x/r_y-z@v1.0", "hf://o/r/sub/m.keras@refs/pr/1",
                                  "hf://o/r@0123456789abcdef0123456789abcdef01234567"])
def test_hub_ids_inside_the_grammar_are_kept(text):
    from dfscan.classifier.hub import HubRef

    assert str(HubRef.parse(text)).startswith(text.split("@")[0])


@pytest.mark.parametrize("source", [{"hub": "o/r", "file": "m.keras", "revision": "../../../../dev/zero"},
                                    {"hub": "o/r", "file": "../x.keras"}, {"hub": "../r", "file": "m.keras"}])
def test_registry_revisions_and_files_are_held_to_the_grammar(tmp_path, monkeypatch, source):
    from dfscan.common.errors import ModelError
    from dfscan.classifier.registry import load_registry

    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"models": [{"name": "m", "source": source}]}))
    with pytest.raises(ModelError, match="source"):
        load_registry(registry)


def test_cached_ref_that_is_not_a_file_is_not_read(tmp_path, monkeypatch):
    """A FIFO planted as a cached branch ref would hang the read: it is treated as not cached."""
    from dfscan.classifier.hub import HubRef, _cached_snapshot

    refs = tmp_path / "models--o--r" / "refs"
    refs.mkdir(parents=True)
    os.mkfifo(refs / "main")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    got = []
    reader = threading.Thread(target=lambda: got.append(_cached_snapshot(HubRef("o/r"))), daemon=True)
    reader.start()
    reader.join(20)
    hung = reader.is_alive()
    if hung:  # the old code: blocked opening the FIFO; release it, then fail
        os.close(os.open(refs / "main", os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
    assert not hung and got == [None]


# --- the store's key covers what the sidecar says the output means -----------------------------------

def test_fixed_sidecar_output_is_not_answered_from_the_store(colour_model, clips, tmp_path):
    from dfscan import ScanConfig, scan

    folder = tmp_path / "v"
    folder.mkdir()
    shutil.copyfile(clips["fake_mp4"], folder / "red.mp4")
    model = tmp_path / "m.keras"
    shutil.copyfile(colour_model, model)
    side = tmp_path / "m.json"
    side.write_text(json.dumps({"name": "m", "output": "p_real"}))  # wrong: the network gives P(FAKE)
    cfg = ScanConfig(model=str(model), store=str(tmp_path / "s.sqlite"), frames=_few_frames())
    wrong = scan([folder], cfg).results[0]
    side.write_text(json.dumps({"name": "m", "output": "p_fake"}))  # fixed
    right = scan([folder], cfg).results[0]
    assert not right.cached  # was: reused, with the old, inverted meaning
    assert right.score == pytest.approx(1 - wrong.score, abs=1e-4) and right.score > 0.5


def _few_frames():
    from dfscan.decode.read import FrameSpec

    return FrameSpec.parse("0:91:30")


# --- signals, overlapping scans, leftovers (real subprocesses) -----------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("five")
    for i in range(N):
        write_opencv(d / f"clip{i}.mp4", frames_for(100, tint=("red", "blue")[i % 2], seed=20 + i))
    return d


def command(folder, model, out: Path, *more) -> list[str]:
    return [sys.executable, "-m", "dfscan", "scan", str(folder), "--model", str(model), "--csv", str(out),
            "--frames", "0:100:3", "--workers", "1", "-q", *map(str, more)]


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def start(args, cwd: Path | None = None, extra_env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, env={**env(), **(extra_env or {})}, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.monotonic() + 240
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the scan ended before {what}: {proc.communicate()[1]}"


def with_sighup(action: str, args: list[str]) -> list[str]:
    """`args` started with SIGHUP set to `action` ("SIG_DFL" or "SIG_IGN"), whatever this process has: a test run
    under nohup ignores it, and dfscan honours an ignored SIGHUP."""
    code = f"import os, signal, sys; signal.signal(signal.SIGHUP, signal.{action}); os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", code, *args]


def jsonl_paths(path: Path) -> list[str]:
    return [json.loads(line)["path"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_terminated_scan_keeps_its_jsonl_and_the_same_command_finishes(folder, colour_model, tmp_path, sig):
    out, jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    args = command(folder, colour_model, out, "--jsonl", jsonl, "--no-store")
    args = with_sighup("SIG_DFL", args) if sig == signal.SIGHUP else args
    proc = start(args)
    wait_for(proc, lambda: lines_in(jsonl) >= 1, "its first JSON line")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # handled as Ctrl-C, not killed by the signal
    assert Path(str(jsonl) + ".partial").exists() and Path(str(out) + ".partial").exists()
    again = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=300)
    assert again.returncode == 1, again.stderr  # was: "r.jsonl exists", exit 2
    paths = jsonl_paths(jsonl)
    assert len(paths) == N == len(set(paths))
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".partial", ".lock"))]


def test_a_scan_started_with_nohup_keeps_running_through_a_hangup(folder, colour_model, tmp_path):
    out, jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    proc = start(with_sighup("SIG_IGN", command(folder, colour_model, out, "--jsonl", jsonl, "--no-store")))
    wait_for(proc, lambda: lines_in(jsonl) >= 1, "its first JSON line")
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # finished: FAKE among the clips
    assert len(jsonl_paths(jsonl)) == N and out.exists()


def test_killed_scan_with_jsonl_is_continued_by_the_same_command(folder, colour_model, tmp_path):
    out, jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    args = command(folder, colour_model, out, "--jsonl", jsonl, "--no-store")
    proc = start(args)
    wait_for(proc, lambda: lines_in(jsonl) >= 1, "its first JSON line")
    proc.kill()
    proc.communicate(timeout=60)
    again = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=300)
    assert again.returncode == 1, again.stderr
    paths = jsonl_paths(jsonl)
    assert len(paths) == N == len(set(paths))


def test_second_scan_with_the_same_report_name_refuses_and_the_first_loses_nothing(folder, colour_model,
                                                                                   tmp_path):
    out = tmp_path / "r.csv"
    first = start(command(folder, colour_model, out, "--no-store"))
    wait_for(first, lambda: lines_in(Path(str(out) + ".partial")) >= 2, "its first row")
    second = subprocess.run(command(folder, colour_model, out, "--no-store"), capture_output=True, text=True,
                            env=env(), timeout=300)
    assert second.returncode == 2
    assert "another dfscan scan" in second.stderr and "r.csv" in second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 1, err  # was: its live .partial deleted by the second, a crash at its end
    assert lines_in(out) == N + 1


def test_a_dead_process_leftovers_are_swept_at_start_and_live_ones_kept(folder, colour_model, tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    temp, cache = tmp_path / "tmp", tmp_path / "cache"
    (cache / "openvino").mkdir(parents=True)
    temp.mkdir()
    out = tmp_path / "r.csv"
    old = time.time() - 3600
    dead = [temp / f"dfscan-weights-{gone.pid}-abc", temp / f"dfscan-export-{gone.pid}-x",
            cache / "openvino" / f".partial-{gone.pid}-y", tmp_path / f".r.csv.{gone.pid}-0123456789ab.tmp"]
    live = [temp / f"dfscan-weights-{os.getpid()}-abc", temp / "unrelated-7-x"]
    young = temp / f"dfscan-layout-{gone.pid}-new"
    for path in dead + live + [young]:
        if path.name.endswith(".tmp"):
            path.write_text("half a report")
        else:
            path.mkdir()
            (path / "model.weights.h5").write_bytes(b"\0" * 1000)
        if path is not young:
            os.utime(path, (old, old))
    done = subprocess.run(command(folder, colour_model, out, "--no-store"), capture_output=True, text=True,
                          env={**env(), "TMPDIR": str(temp), "DFSCAN_CACHE_DIR": str(cache)}, timeout=300)
    assert done.returncode == 1, done.stderr
    assert not [p for p in dead if p.exists()]
    assert all(p.exists() for p in live + [young])


# --- evaluate and train: malformed label and metadata files are data errors naming file and line ----------

HUGE = "x" * 200_000  # past csv's own field limit (131,072): csv.Error, an internal error before


@pytest.mark.parametrize("content, said", [
    (b"path,label,label\na.mp4,FAKE,REAL\n", "line 1: column label is named twice"),
    (b"path,label\na.mp4,FAKE\nb\xff.mp4,REAL\n", "line 3: not UTF-8"),
    pytest.param(b"path,label\na.mp4," + HUGE.encode() + b"\n", "line 2", id="huge-cell"),
    (b"path,label\na.mp4,MAYBE\n", "line 2: label 'MAYBE'"),
    (b"path,label\n/etc/passwd,FAKE\n", "line 2: /etc/passwd is not inside the dataset folder"),
    (b"path,label\n../outside.mp4,FAKE\n", "line 2: ../outside.mp4 is not inside the dataset folder"),
    (b"\xef\xbb\xbfpath,label\n../x.mp4,REAL\n", "line 2: ../x.mp4 is not inside"),  # the BOM is read as such
])
def test_evaluate_refuses_malformed_labels_naming_file_and_line(tmp_path, content, said, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_opencv(videos / "a.mp4", frames_for(3))
    labels = tmp_path / "labels.csv"
    labels.write_bytes(content)
    assert main(["evaluate", str(videos), "--labels", str(labels), "--kind", "videos",
                 "--output", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(labels) in err and said in err
    assert not (tmp_path / "out").exists()


def test_labels_json_names_outside_the_folder_are_refused(tmp_path):
    from dfscan.common.errors import DataError
    from dfscan.labelled.evaluate import read_labels

    (tmp_path / "metadata.json").write_text(json.dumps({"/dev/zero": {"label": "FAKE"}}))
    with pytest.raises(DataError, match="entry '/dev/zero': /dev/zero is not inside the dataset folder"):
        read_labels(tmp_path / "metadata.json", tmp_path)


def _read_labels_file(name: str) -> None:
    from pathlib import Path as P

    from dfscan.labelled.evaluate import read_labels

    read_labels(P(name), P("."))


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_labels_file_that_is_not_a_file_is_refused_at_once(tmp_path, device):
    if device == "fifo":
        device = str(tmp_path / "labels.csv")
        os.mkfifo(device)
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
           f"from test_hostile_guards import _read_labels_file; _read_labels_file({device!r})"
    try:  # the old code: read /dev/zero to the memory limit, or blocked on the FIFO
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=60,
                              preexec_fn=_limited_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {device} as labels did not end")
    assert "DataError" in done.stderr and "is not a regular file" in done.stderr, done.stderr


def kaggle_layout(root: Path, metadata: bytes) -> Path:
    images = root / "images"
    (images / "a").mkdir(parents=True)
    (images / "metadata34.csv").write_bytes(metadata)
    return root


@pytest.mark.parametrize("metadata, said", [
    (b"filename,label,split,original\n../../etc.mp4,FAKE,train,b.mp4\n", "line 2: ../../etc is not inside"),
    (b"filename,label,split,original\n/etc/x.mp4,FAKE,train,b.mp4\n", "line 2: /etc/x is not inside"),
    (b"filename,label,label,original\na.mp4,FAKE,REAL,\n", "line 1: column label is named twice"),
    (b"filename,label,split,original\na.mp4,REAL,train,\nb\xe9.mp4,FAKE,train,a.mp4\n", "line 3: not UTF-8"),
    (b"filename,label,split\na.mp4,REAL,train\n", "needs column(s) original"),
    pytest.param(b"filename,label,split,original\na.mp4,REAL,train," + HUGE.encode() + b"\n", "line 2",
                 id="huge-cell"),
    (b"filename,label,split,original\na.mp4,real-ish,train,\n", "line 2: label 'real-ish'"),
])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_train_and_evaluate_refuse_malformed_metadata(tmp_path, metadata, said, command, capsys):
    data = kaggle_layout(tmp_path / "data", metadata)
    args = ["train", str(data)] if command == "train" else ["evaluate", str(data), "--kind", "crops"]
    assert main([*args, "--output", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "metadata34.csv" in err and said in err


def test_a_subset_that_is_not_utf8_is_a_data_error(tmp_path):
    from dfscan.common.errors import DataError
    from dfscan.labelled.evaluate import read_subset

    (tmp_path / "split.csv").write_bytes(b"image,side\na/0.jpg,test\na/\xff.jpg,test\n")
    with pytest.raises(DataError, match="line 3: not UTF-8"):
        read_subset(tmp_path / "split.csv")


def test_crops_are_shrunk_to_the_model_size_as_they_are_read_with_the_same_input(tmp_path):
    import cv2
    import numpy as np

    from dfscan.labelled.dataset import read_crops
    from dfscan.classifier.model_info import Preprocess

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (1500, 1200, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "0.jpg"), big)
    [(_, whole)] = read_crops([tmp_path / "0.jpg"])
    [(_, fitted)] = read_crops([tmp_path / "0.jpg"], fit=(224, 224))
    assert whole.shape == (1500, 1200, 3) and fitted.shape == (224, 224, 3)
    prep = Preprocess()
    assert np.array_equal(prep.apply(whole), prep.apply(fitted))  # the model sees the same input


# --- `models info FILE` refuses what `scan` refuses, with the same reason and exit code ------------------

def _bad_model(kind: str, path: Path) -> Path:
    import keras
    import numpy as np

    if kind == "two-inputs":
        a, b = keras.Input((224, 224, 3)), keras.Input((224, 224, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
        model = keras.Model([a, b], keras.layers.Dense(1, activation="sigmoid")(pooled))
    elif kind == "channels-first":
        x = keras.Input((3, 224, 224))
        pooled = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(x)
        model = keras.Model(x, keras.layers.Dense(1, activation="sigmoid")(pooled))
    else:
        x = keras.Input((224, 224, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(x, keras.layers.Dense(1, activation="softmax" if kind == "softmax" else "sigmoid")(pooled))
        if kind == "nan":
            model.layers[-1].set_weights([np.full((3, 1), np.nan, np.float32), np.zeros(1, np.float32)])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-models")
    kinds = {"softmax": "m.keras", "nan": "m.keras", "two-inputs": "m.keras", "channels-first": "m.keras",
             "legacy-h5": "m.h5"}
    out = {}
    for kind, name in kinds.items():
        (d / kind).mkdir()
        out[kind] = _bad_model(kind, d / kind / name)
    return out


REASONS = {"softmax": "'softmax' activation", "nan": "NaN or infinite scores", "two-inputs": "input",
           "channels-first": "input", "legacy-h5": "m.h5"}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_models_info_refuses_what_scan_refuses(bad_models, kind, capsys):
    assert main(["models", "info", str(bad_models[kind])]) == 2  # was: 0, the table of a model scan refuses
    assert REASONS[kind] in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("kind", ["softmax", "nan"])
def test_scan_refuses_with_the_same_reason(bad_models, clips, tmp_path, kind, capsys):
    args = ["scan", str(clips["fake_mp4"]), "--model", str(bad_models[kind]), "--csv", str(tmp_path / "r.csv"),
            "--no-store", "--frames", "0:31:30", "-q"]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert REASONS[kind] in err
    assert "OpenVINO" not in err and "TensorFlow" not in err  # a NaN model is not a runtime's fault


def test_a_registry_path_that_is_a_device_is_not_called_missing(tmp_path, monkeypatch):
    from dfscan.common.errors import ModelError
    from dfscan.classifier.registry import resolve_model

    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"models": [{"name": "m", "source": {"path": "/dev/zero"}}]}))
    monkeypatch.setenv("DFSCAN_REGISTRY", str(registry))
    with pytest.raises(ModelError, match="/dev/zero is not a regular file"):  # was "file not found"
        resolve_model("m")
