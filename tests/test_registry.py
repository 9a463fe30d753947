"""The hub default: the registry, the hub cache, trust on first use, and downloads over a real socket.

Offline tests lay out a hub cache as huggingface_hub does. Download tests run `dfscan` in a
subprocess against tests/hub_server.py (a stand-in hub on 127.0.0.1, laid out like the real
repository), with HF_ENDPOINT pointing at it: real bytes through huggingface_hub's real code
(huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import, hence the subprocesses).
"""
import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfscan import ScanConfig, Verdict, scan
from dfscan.cli import main
from dfscan.common.errors import ModelError
from dfscan.classifier.model_info import file_sha256
from dfscan.classifier.registry import HubRef, load_registry, resolve_model
from hub_server import HubStandIn, SilentPort, closed_port_url

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "models" / "registry.json"
REPO = "fc63/deepfake-detection-cnn_v2"
FILE = "keras_model/best_model.keras"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HUB_COMMIT = "4e9a460" + "0" * 33  # the real head is 4e9a460 "Upload README.md"


@pytest.fixture(autouse=True)
def own_registry_and_pins(tmp_path, monkeypatch):
    """This checkout's registry (not the installed one), and pins private to each test."""
    monkeypatch.setenv("DFSCAN_REGISTRY", str(REGISTRY))
    monkeypatch.setenv("DFSCAN_DATA_DIR", str(tmp_path / "data"))


def lay_out_hub_cache(cache, model_file, repo=REPO, commit=COMMIT, file=FILE, extra=None):
    """models--owner--repo/snapshots/<commit>/<file> and refs/main, as hf_hub_download leaves them."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / commit
    (snap / file).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_file, snap / file)
    for name, text in (extra or {}).items():
        (snap / name).write_text(text)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snap / file


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache.mkdir()
    return cache


def registry_with(tmp_path, monkeypatch, drop=(), **source):
    """A copy of the registry with the reference entry's source changed (and fields dropped)."""
    data = json.loads(REGISTRY.read_text())
    data["models"][0]["source"].update(source)
    for key in drop:
        data["models"][0].pop(key)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("DFSCAN_REGISTRY", str(path))
    return path


@pytest.fixture
def colour_as_reference(tmp_path, monkeypatch):
    """The registry with no known network, so that the tiny colour model can stand in for the reference."""
    return registry_with(tmp_path, monkeypatch, drop=("architecture",))


# -- the registry itself ---------------------------------------------------------------------------


def test_reference_entry_names_the_real_file_and_the_network():
    (first, *_) = load_registry()
    assert str(first.hub) == f"hf://{REPO}/{FILE}@main"
    assert first.data["architecture"] == "efficientnetb0-gap-dropout0.4-dense1-sigmoid"
    prep = first.data["preprocessing"]
    assert (prep["color_order"], prep["scale"], prep["input_size"]) == ("BGR", "0..1", [224, 224])
    assert first.data["metrics"]["roc_auc"] == 0.8884 and first.data["threshold"] == 0.5
    assert "registry.json" not in first.data["pinning"] or "edit" not in first.data["pinning"]


@pytest.mark.parametrize("change, message", [
    ({"sha256": "abc"}, "64 lowercase hex"),
    ({"hub": "not a repo"}, "owner/repo"),
    ({"file": "model.h5"}, ".keras file"),
])
def test_registry_fields_are_checked(tmp_path, monkeypatch, change, message):
    registry_with(tmp_path, monkeypatch, **change)
    with pytest.raises(ModelError, match=message):
        load_registry()


@pytest.mark.parametrize("field, value, message", [
    ("threshold", float("nan"), r"threshold must be a number in \(0, 1\), not nan"),
    ("threshold", 1.0, r"threshold must be a number in \(0, 1\)"),
    ("threshold", "0.5", "threshold must be a number"),
    ("preprocessing", [224], "preprocessing must be an object"),
    ("architecture", "resnet9000", "not one dfscan builds"),
    ("uncertain", [0.6, 0.7], r"must hold the threshold 0.5: 0 <= LOW <= 0.5 <= HIGH <= 1"),
    ("uncertain", "0.4:0.6", r"uncertain must be \[LOW, HIGH\]"),
    ("uncertain", [0.2, 1.5], r"0 <= LOW <= HIGH <= 1"),
])
def test_registry_model_metadata_is_checked(offline_cache, colour_model, tmp_path, monkeypatch, field, value,
                                            message):
    lay_out_hub_cache(offline_cache, colour_model)
    data = json.loads(REGISTRY.read_text())
    data["models"][0][field] = value
    path = tmp_path / "bad-registry.json"
    path.write_text(json.dumps(data))  # json writes NaN as NaN, which JSON itself does not allow
    monkeypatch.setenv("DFSCAN_REGISTRY", str(path))
    with pytest.raises(ModelError, match=message):
        resolve_model(None)


# -- offline: the hub cache ------------------------------------------------------------------------


def test_default_scan_loads_the_hub_model_from_the_cache_offline(offline_cache, colour_model, colour_as_reference,
                                                                 clips):
    cached = lay_out_hub_cache(offline_cache, colour_model)
    report = scan([clips["fake_mp4"], clips["real_avi"]], ScanConfig())  # no model given: the default
    assert [r.verdict for r in report.results] == [Verdict.FAKE, Verdict.REAL]
    sha = file_sha256(cached)
    assert report.model == f"dfdc-part34-effnetb0@{COMMIT[:12]} sha256:{sha[:12]}"
    assert report.results[0].model == report.model


def test_first_use_pins_the_file_and_says_so_once(offline_cache, colour_model, colour_as_reference, tmp_path):
    cached = lay_out_hub_cache(offline_cache, colour_model)
    info = resolve_model(None)
    assert not [w for w in info.warnings if "first use" in w]  # information, not a warning (issue 26)
    (note,) = [n for n in info.notices if "first use" in n]
    assert file_sha256(cached) in note and COMMIT in note and str(tmp_path / "data" / "model-pins.json") in note
    assert "edit" not in note and "registry.json" not in note
    pins = tmp_path / "data" / "model-pins.json"
    assert stat.S_IMODE(pins.stat().st_mode) == 0o600 and stat.S_IMODE(pins.parent.stat().st_mode) == 0o700
    recorded = json.loads(pins.read_text())["pins"][f"hf://{REPO}/{FILE}@main"]
    assert (recorded["sha256"], recorded["commit"]) == (file_sha256(cached), COMMIT)
    again = resolve_model(None)
    assert again.warnings == () and again.notices == ()  # said once, at first use


def test_a_cached_file_altered_after_first_use_is_refused(offline_cache, colour_model, colour_as_reference):
    cached = lay_out_hub_cache(offline_cache, colour_model)
    before = file_sha256(cached)
    resolve_model(None)
    with open(cached, "ab") as fh:
        fh.write(b"\0")
    after = file_sha256(cached)
    with pytest.raises(ModelError) as err:
        resolve_model(None)
    text = str(err.value)
    assert before in text and after in text and "changed after its first use" in text
    assert "dfscan models fetch dfdc-part34-effnetb0 --refresh" in text


@pytest.mark.parametrize("kind", ["symlink", "fifo", "deep", "huge"])
def test_a_pins_file_dfscan_did_not_write_is_refused_at_once(offline_cache, colour_model, colour_as_reference,
                                                              tmp_path, kind):
    """The pins decide what dfscan trusts: a link, a FIFO (which would block), a file nested past the
    JSON parser or too big to be a pins file stops the scan with a message, never a hang or a traceback."""
    lay_out_hub_cache(offline_cache, colour_model)
    resolve_model(None)  # a real pins file, then replaced by something else
    pins = tmp_path / "data" / "model-pins.json"
    if kind == "symlink":
        real = pins.rename(tmp_path / "elsewhere.json")
        pins.symlink_to(real)
        message = "symbolic link"
    elif kind == "fifo":
        pins.unlink()
        os.mkfifo(pins)
        message = "not a regular file"
    elif kind == "deep":
        pins.write_text("[" * 200_000)
        message = "cannot read the model pins"
    else:
        pins.write_bytes(b" " * (5 << 20))
        message = "more than a pins file holds"
    started = time.monotonic()
    with pytest.raises(ModelError, match=f"{message}.*[Mm]ove it aside"):
        resolve_model(None)
    assert time.monotonic() - started < 10


def test_recorded_hash_must_match(offline_cache, colour_model, tmp_path, monkeypatch):
    cached = lay_out_hub_cache(offline_cache, colour_model)
    registry_with(tmp_path, monkeypatch, drop=("architecture",), sha256="f" * 64)
    with pytest.raises(ModelError, match="but the registry records f{64}.*dfscan models fetch"):
        resolve_model("reference")
    registry_with(tmp_path, monkeypatch, drop=("architecture",), sha256=file_sha256(cached), revision=COMMIT)
    info = resolve_model("reference")
    assert info.warnings == () and info.revision == COMMIT


def test_missing_cache_offline_says_what_to_run(offline_cache, tmp_path, capsys):
    with pytest.raises(ModelError, match=r"offline.*not in the hub cache.*dfscan models fetch dfdc-part34-effnetb0"
                                         r".*--model"):
        resolve_model(None)
    assert main(["scan", str(tmp_path), "--csv", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "dfscan models fetch" in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


def test_offline_flag_works_without_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelError, match="offline"):
        resolve_model(None, offline=True)


def test_cached_file_at_another_path_is_used_with_a_warning(offline_cache, colour_model, colour_as_reference):
    lay_out_hub_cache(offline_cache, colour_model, file="best_model.keras")  # where the model card says
    info = resolve_model(None)
    # Only the cache was read: the note says what dfscan knows (not that the repository lacks the file).
    assert any(FILE in w and "is not in the hub cache and dfscan is offline; using best_model.keras" in w
               for w in info.warnings), info.warnings


def test_any_hub_id_with_its_own_sidecar(offline_cache, colour_model):
    meta = {"name": "someone-model", "threshold": 0.8, "preprocessing": {"color_order": "RGB", "scale": "0..255"}}
    lay_out_hub_cache(offline_cache, colour_model, repo="someone/model", file="best_model.keras",
                      extra={"best_model.json": json.dumps(meta)})
    info = resolve_model(f"hf://someone/model/best_model.keras@{COMMIT}")
    assert (info.name, info.threshold, info.preprocess.color_order, info.revision) == (
        "someone-model", 0.8, "RGB", COMMIT)


def test_wrong_shape_hub_model_is_refused_with_a_message(offline_cache, colour_as_reference, tmp_path):
    import keras

    inputs = keras.Input((224, 224, 3))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs)))
    model.save(tmp_path / "three.keras")
    lay_out_hub_cache(offline_cache, tmp_path / "three.keras")
    with pytest.raises(ModelError, match=r"output is \(None, 3\), expected \(None, 1\)"):
        scan([tmp_path], ScanConfig())


def test_hub_ids_parse():
    assert HubRef.parse("hf://a/b") == HubRef("a/b", "best_model.keras", None)
    assert HubRef.parse("hf://a/b/sub/m.keras@v1.0") == HubRef("a/b", "sub/m.keras", "v1.0")
    with pytest.raises(ModelError):
        HubRef.parse("hf://nope")
    with pytest.raises(ModelError, match="no such file, and no registry model"):
        resolve_model("no-such-model")


def test_models_commands(offline_cache, colour_model, colour_as_reference, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    assert main(["models", "verify"]) == 2  # not cached yet
    assert "dfdc-part34-effnetb0: not cached" in capsys.readouterr().out
    cached = lay_out_hub_cache(offline_cache, colour_model)
    assert main(["models", "list"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "(default)" in line]
    assert "dfdc-part34-effnetb0 (default)" in row and "pinned at first use" in row and "snap" in row
    resolve_model(None)  # first use: pinned
    assert main(["models", "verify", "reference"]) == 0
    out = capsys.readouterr().out
    assert file_sha256(cached) in out and "matches the record" in out
    assert main(["models", "info", "reference", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"]["hub"] == REPO and info["metrics"]["f1"] == 0.8016
    assert main(["models", "info", "nope"]) == 2


def test_models_info_reads_as_text_and_takes_a_local_file(colour_model, tmp_path, capsys):
    from dfscan.classifier.model_info import file_sha256 as sha

    model = Path(shutil.copy(colour_model, tmp_path / "mine.keras"))
    model.with_suffix(".json").write_text(json.dumps({"name": "mine\x1b[2J", "threshold": 0.7,
                                                      "metrics": {"roc_auc": 0.91}}))
    assert main(["models", "info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "\x1b" not in out and "mine\\x1b[2J" in out  # text, escapes shown, not sent
    assert sha(model) in "".join(out.split()) and "0.7" in out  # a narrow terminal folds the hash and "roc_auc: 0.91" in out and "color_order: BGR" in out
    assert main(["models", "info", "reference"]) == 0
    assert "accuracy: 0.7965" in capsys.readouterr().out
    assert main(["models", "info", str(tmp_path / "missing.keras")]) == 2


# -- over a real socket: the stand-in hub ----------------------------------------------------------


def real_layout(model_file: Path, path: str = FILE) -> dict[str, bytes]:
    """The real repository's files: README.md, .gitattributes and the model under keras_model/."""
    return {"README.md": b"# DeepFake Detection with CNNs & Transfer Learning\n",
            ".gitattributes": b"*.keras filter=lfs diff=lfs merge=lfs -text\n", path: model_file.read_bytes()}


def dfscan_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0",
               HF_HUB_CACHE=str(tmp_path / "hub"), DFSCAN_DATA_DIR=str(tmp_path / "data"),
               DFSCAN_STORE=str(tmp_path / "store.sqlite"), DFSCAN_REGISTRY=str(REGISTRY), COLUMNS="200")
    return env


def dfscan(env, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfscan", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=env["HF_HUB_CACHE"].rsplit("/", 1)[0])


def csv_scores(path: Path) -> dict[str, str]:
    with open(path, newline="") as fh:
        return {Path(r["path"]).name: r["face_scores"] for r in csv.DictReader(fh)}


def test_first_scan_downloads_the_next_runs_offline_and_a_lambda_file_scores_the_same(
        tmp_path, reference_like, clips):
    """The README's default scan against a hub laid out like the real one; then the cache alone."""
    env = dfscan_env(tmp_path, "")
    clip = str(clips["fake_mp4"])
    with HubStandIn() as hub:
        hub.add(REPO, real_layout(reference_like["clean"]), commit=HUB_COMMIT)
        env["HF_ENDPOINT"] = hub.url
        first = dfscan(env, "scan", clip, "--csv", str(tmp_path / "first.csv"), "--no-store")
        assert first.returncode in (0, 1, 4), first.stderr  # 4: the random network's score is in the band
        assert "downloading the model (" in first.stderr and f"hf://{REPO}/{FILE}" in first.stderr  # never silent
        assert "first use" in first.stderr and HUB_COMMIT in " ".join(first.stderr.split())
        assert ("GET", f"/{REPO}/resolve/main/{FILE}") in hub.requests
    # The hub is gone: the cached copy scans, with no network and no first-use warning.
    second = dfscan(env, "scan", clip, "--csv", str(tmp_path / "second.csv"), "--no-store")
    assert second.returncode == first.returncode, second.stderr
    assert "first use" not in second.stderr and "downloading" not in second.stderr
    scores = csv_scores(tmp_path / "first.csv")
    assert scores == csv_scores(tmp_path / "second.csv") and len(set(scores[Path(clip).name].split())) > 1
    # The same weights in a file whose graph holds a code-running Lambda layer: same scores, no code run.
    lam_env = dfscan_env(tmp_path / "lambda", "")
    (tmp_path / "lambda").mkdir()
    with HubStandIn() as hub:
        hub.add(REPO, real_layout(reference_like["lambda"]), commit=HUB_COMMIT)
        lam_env["HF_ENDPOINT"] = hub.url
        third = dfscan(lam_env, "scan", clip, "--csv", str(tmp_path / "lambda.csv"), "--no-store")
    assert third.returncode == first.returncode, third.stderr
    assert csv_scores(tmp_path / "lambda.csv") == scores
    assert not reference_like["marker"].exists()


def test_fetch_pin_refuse_an_altered_file_and_accept_with_refresh(tmp_path, reference_like):
    env = dfscan_env(tmp_path, "")
    with HubStandIn() as hub:
        hub.add(REPO, real_layout(reference_like["clean"]), commit=HUB_COMMIT)
        env["HF_ENDPOINT"] = hub.url
        fetched = dfscan(env, "models", "fetch")
        assert fetched.returncode == 0, fetched.stderr
        sha = file_sha256(reference_like["clean"])
        assert sha in fetched.stdout and HUB_COMMIT in fetched.stdout
        cached = tmp_path / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / HUB_COMMIT / FILE
        with open(cached.resolve(), "r+b") as fh:  # the blob the snapshot links to
            fh.seek(1000)
            fh.write(b"tampered")
        altered = file_sha256(cached)
        refused = dfscan(env, "scan", str(tmp_path), "--csv", str(tmp_path / "r.csv"))
        assert refused.returncode == 2
        err = " ".join(refused.stderr.split())
        assert sha in err and altered in err and "dfscan models fetch dfdc-part34-effnetb0 --refresh" in err
        assert not (tmp_path / "r.csv").exists()
        verify = dfscan(env, "models", "verify")
        assert verify.returncode == 2 and "DIFFERS" in verify.stdout
        accepted = dfscan(env, "models", "fetch", "--refresh")
        assert accepted.returncode == 0, accepted.stderr
        assert file_sha256(cached) == sha  # downloaded again, not the altered bytes kept
        assert dfscan(env, "models", "verify").returncode == 0


def test_a_moved_file_is_found_and_a_missing_one_lists_the_repository(tmp_path, reference_like):
    env = dfscan_env(tmp_path, "")
    with HubStandIn() as hub:
        hub.add(REPO, real_layout(reference_like["clean"], path="models/v3/best.keras"), commit=HUB_COMMIT)
        hub.add("someone/two", {"README.md": b"x", "a.keras": b"1", "b/c.keras": b"2"})
        env["HF_ENDPOINT"] = hub.url
        moved = dfscan(env, "models", "fetch")
        assert moved.returncode == 0, moved.stderr
        out = " ".join(moved.stdout.split())
        assert f"has no {FILE}; using models/v3/best.keras" in out
        assert ("GET", f"/api/models/{REPO}/tree/main") in hub.requests
        two = dfscan(env, "models", "fetch", "hf://someone/two/model.keras")
        assert two.returncode == 2
        err = " ".join(two.stderr.split())
        assert "the repository holds: README.md, a.keras, b/c.keras" in err and "Traceback" not in err
        for spec, message in (("hf://nobody/nothing", "no repository nobody/nothing"),
                              (f"hf://{REPO}/{FILE}@v9", "has no revision 'v9'")):
            gone = dfscan(env, "models", "fetch", spec)
            assert gone.returncode == 2 and message in " ".join(gone.stderr.split()), gone.stderr


def test_a_cached_stand_in_is_used_only_without_the_hub(tmp_path, reference_like, colour_model):
    """Another .keras file cached from the repository never hides the registered file the hub holds."""
    env = dfscan_env(tmp_path, "")
    lay_out_hub_cache(tmp_path / "hub", colour_model, commit=HUB_COMMIT, file="best_model.keras")
    unreachable = dfscan(dict(env, HF_ENDPOINT=closed_port_url()), "models", "fetch", timeout=60)
    assert unreachable.returncode == 0, unreachable.stderr
    assert "the hub cannot be reached; using best_model.keras" in " ".join(unreachable.stdout.split())
    with HubStandIn() as hub:
        hub.add(REPO, real_layout(reference_like["clean"]), commit=HUB_COMMIT)
        env["HF_ENDPOINT"] = hub.url
        fetched = dfscan(env, "models", "fetch")
        assert fetched.returncode == 0, fetched.stderr
        assert ("GET", f"/{REPO}/resolve/main/{FILE}") in hub.requests
    assert "using best_model.keras" not in fetched.stdout and f"snapshots/{HUB_COMMIT}/{FILE}" in fetched.stdout


def test_a_full_disk_is_not_called_an_unreachable_hub(tmp_path, reference_like):
    """A write that fails in the hub cache (here: a file size limit, as a full disk) is said as such."""
    import resource

    def small_files():  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    env = dfscan_env(tmp_path, "")
    with HubStandIn() as hub:
        hub.add(REPO, real_layout(reference_like["clean"]), commit=HUB_COMMIT)
        env["HF_ENDPOINT"] = hub.url
        full = subprocess.run([sys.executable, "-m", "dfscan", "models", "fetch"], env=env, capture_output=True,
                              text=True, timeout=120, preexec_fn=small_files)
    err = " ".join(full.stderr.split())
    assert full.returncode == 2 and "Traceback" not in err, err
    assert "cannot save" in err and "in the hub cache" in err and "cannot reach" not in err, err


def test_a_hub_that_stalls_on_the_file_list_fails_fast(tmp_path, reference_like):
    """The registered file is gone and the hub never sends the repository's file list: no hang."""
    env = dfscan_env(tmp_path, "")
    with HubStandIn() as hub:
        hub.add(REPO, real_layout(reference_like["clean"], path="models/v3/best.keras"), commit=HUB_COMMIT)
        hub.stall_listings = True
        env["HF_ENDPOINT"], env["DFSCAN_HUB_TIMEOUT"] = hub.url, "3"  # the wait is the point: no longer than that
        started = time.monotonic()
        stalled = dfscan(env, "models", "fetch", timeout=60)
        took = time.monotonic() - started
    err = " ".join(stalled.stderr.split())
    assert stalled.returncode == 2 and took < 20, (took, err)
    assert "did not list hf://" in err and "cannot reach the Hugging Face hub" in err and "Traceback" not in err


def test_metadata_the_hub_could_not_be_asked_for_is_not_called_missing(tmp_path, colour_model):
    lay_out_hub_cache(tmp_path / "hub", colour_model, repo="someone/model", file="best_model.keras")
    cached = dfscan(dfscan_env(tmp_path, closed_port_url()), "models", "fetch", "hf://someone/model", timeout=60)
    assert cached.returncode == 0, cached.stderr
    out = " ".join(cached.stdout.split())
    assert "the hub could not be reached to look for hf://someone/model/best_model.json" in out, out


@pytest.mark.parametrize("where", ["closed port", "silent port"])
def test_an_unreachable_hub_fails_fast_and_says_what_to_do(tmp_path, where, clips):
    with SilentPort() as silent:
        env = dfscan_env(tmp_path, closed_port_url() if where == "closed port" else silent.url)
        env["DFSCAN_HUB_TIMEOUT"] = "3"  # a silent port is waited for this long: the test needs no more
        started = time.monotonic()
        scanned = dfscan(env, "scan", str(clips["fake_mp4"]), "--csv", str(tmp_path / "r.csv"), timeout=60)
        took = time.monotonic() - started
        fetched = dfscan(env, "models", "fetch", timeout=60)
    assert scanned.returncode == 2 and took < 15, (took, scanned.stderr)
    err = " ".join(scanned.stderr.split())
    assert "cannot reach the Hugging Face hub" in err and "--model FILE" in err and "--offline" in err
    assert "dfscan models fetch dfdc-part34-effnetb0" in err and "Traceback" not in err
    assert fetched.returncode == 2
    ferr = " ".join(fetched.stderr.split())
    assert "cannot reach the Hugging Face hub" in ferr and "models fetch" not in ferr


def test_the_bare_repository_id_means_the_registered_model(offline_cache, colour_model, colour_as_reference):
    lay_out_hub_cache(offline_cache, colour_model)
    info = resolve_model(f"hf://{REPO}")
    assert info.name == "dfdc-part34-effnetb0" and info.path.as_posix().endswith(FILE)
    pinned = resolve_model(f"hf://{REPO}@{COMMIT}")  # a revision of the registered model: its metadata still
    assert (pinned.name, pinned.revision) == ("dfdc-part34-effnetb0", COMMIT)
