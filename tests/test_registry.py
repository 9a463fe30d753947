"""The hub default, tested offline through a hub cache laid out as huggingface_hub lays it out."""
import json
import shutil

import pytest

from dfscan import ScanConfig, Verdict, scan
from dfscan.cli import main
from dfscan.errors import ModelError
from dfscan.model import file_sha256
from dfscan.registry import HubRef, load_registry, resolve_model

REPO = "fc63/deepfake-detection-cnn_v2"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def lay_out_hub_cache(cache, model_file, repo=REPO, commit=COMMIT, extra=None):
    """models--owner--repo/snapshots/<commit>/best_model.keras and refs/main, as hf_hub_download leaves them."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    shutil.copy(model_file, snap / "best_model.keras")
    for name, text in (extra or {}).items():
        (snap / name).write_text(text)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return snap / "best_model.keras"


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, colour_model):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache.mkdir()
    return cache


def registry_with(tmp_path, monkeypatch, **source):
    data = json.loads(open(load_registry.__globals__["registry_file"]()).read())
    data["models"][0]["source"].update(source)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("DFSCAN_REGISTRY", str(path))


def test_reference_model_is_the_first_registry_entry():
    (first, *_) = load_registry()
    assert str(first.hub) == f"hf://{REPO}/best_model.keras@main"
    prep = first.data["preprocessing"]
    assert (prep["color_order"], prep["scale"], prep["input_size"]) == ("BGR", "0..1", [224, 224])
    assert first.data["metrics"]["roc_auc"] == 0.8884 and first.data["threshold"] == 0.5


def test_default_scan_loads_the_hub_model_from_the_cache_offline(offline_cache, colour_model, clips):
    cached = lay_out_hub_cache(offline_cache, colour_model)
    report = scan([clips["fake_mp4"], clips["real_avi"]], ScanConfig())  # no model given: the default
    assert [r.verdict for r in report.results] == [Verdict.FAKE, Verdict.REAL]
    sha = file_sha256(cached)
    assert report.model == f"dfdc-part34-effnetb0@{COMMIT[:12]} sha256:{sha[:12]}"
    assert report.results[0].model == report.model


def test_unrecorded_hash_is_warned_with_the_value_to_record(offline_cache, colour_model):
    cached = lay_out_hub_cache(offline_cache, colour_model)
    info = resolve_model(None)
    assert any(file_sha256(cached) in w and "models/registry.json" in w for w in info.warnings)


def test_recorded_hash_must_match(offline_cache, colour_model, tmp_path, monkeypatch):
    cached = lay_out_hub_cache(offline_cache, colour_model)
    registry_with(tmp_path, monkeypatch, sha256="f" * 64)
    with pytest.raises(ModelError, match="but the registry records f{64}.*dfscan models fetch"):
        resolve_model("reference")
    registry_with(tmp_path, monkeypatch, sha256=file_sha256(cached), revision=COMMIT)
    info = resolve_model("reference")
    assert info.warnings == () and info.revision == COMMIT


def test_missing_cache_offline_says_what_to_run(offline_cache, tmp_path, capsys):
    with pytest.raises(ModelError, match=r"offline.*not in .*hub.*dfscan models fetch dfdc-part34-effnetb0.*--model"):
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


def test_any_hub_id_with_its_own_sidecar(offline_cache, colour_model):
    meta = {"name": "someone-model", "threshold": 0.8, "preprocessing": {"color_order": "RGB", "scale": "0..255"}}
    lay_out_hub_cache(offline_cache, colour_model, repo="someone/model", extra={"best_model.json": json.dumps(meta)})
    info = resolve_model(f"hf://someone/model/best_model.keras@{COMMIT}")
    assert (info.name, info.threshold, info.preprocess.color_order, info.revision) == (
        "someone-model", 0.8, "RGB", COMMIT)


def test_wrong_shape_hub_model_is_refused_with_a_message(offline_cache, tmp_path):
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


def test_models_commands(offline_cache, colour_model, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    assert main(["models", "verify"]) == 1  # not cached yet
    assert "dfdc-part34-effnetb0: not cached" in capsys.readouterr().out
    cached = lay_out_hub_cache(offline_cache, colour_model)
    assert main(["models", "list"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "(default)" in line]
    assert "dfdc-part34-effnetb0 (default)" in row and "no hash recorded" in row and "snapshots/" + COMMIT[:8] in row
    assert main(["models", "verify", "reference"]) == 0
    assert file_sha256(cached) in capsys.readouterr().out
    assert main(["models", "info", "reference"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"]["hub"] == REPO and info["metrics"]["f1"] == 0.8016
    assert main(["models", "info", "nope"]) == 2
