"""dfscan train: pairing, image checks, splits, the model, and runs end to end."""
import csv
import io
import json
import random
import shutil
from collections import defaultdict
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import cv2

from conftest import KAGGLE_FAKES, cli_in_fresh_process, face_photo, make_kaggle_dataset
from dfscan.cli import main
from dfscan.labelled.dataset import VideoRow
from dfscan.common.errors import ConfigError
from dfscan.train import TrainConfig, build_model, pair_frames, prepare_data, train, with_head

FRAMES = tuple(range(0, 271, 30))
# The pool rule of the reference notebook: pairs per real video for k fakes.
PINNED = {1: 5, 2: 7, 5: 9, 7: 9, 9: 9, 10: 10, 12: 10}
# Expected pairs of the miniature dataset (real00..real05 with KAGGLE_FAKES fakes each).
EXPECTED = {f"real{i:02d}": PINNED[k] for i, k in enumerate(KAGGLE_FAKES) if k}


def rows_for(counts):
    rows = []
    for i, k in enumerate(counts):
        rows.append(VideoRow(f"r{i}", 0, "train", None))
        rows += [VideoRow(f"r{i}f{j}", 1, "train", f"r{i}") for j in range(k)]
    return rows


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --- pairing ------------------------------------------------------------------------------------


def test_pool_rule_gives_the_pinned_pair_counts_per_real_video():
    counts = list(PINNED)
    pairing = pair_frames(rows_for(counts), FRAMES, random.Random(0))
    got = {f"r{i}": pairing.pairs_per_original[f"r{i}"] for i in range(len(counts))}
    assert got == {f"r{i}": PINNED[k] for i, k in enumerate(counts)}
    assert len(pairing.pairs) == sum(PINNED.values()) == 59


def test_the_frame_meeting_an_empty_pool_is_unpaired_and_the_pool_refills():
    pairing = pair_frames(rows_for([1, 2]), FRAMES, random.Random(3))
    by_real = defaultdict(list)
    for p in pairing.pairs:
        by_real[p.real].append(p)
    assert [p.frame for p in by_real["r0"]] == [0, 60, 120, 180, 240]
    two = by_real["r1"]
    assert [p.frame for p in two] == [0, 30, 90, 120, 180, 210, 270]
    # each pool cycle uses every fake once before the refill
    for cycle in (two[0:2], two[2:4], two[4:6]):
        assert {p.fake for p in cycle} == {"r1f0", "r1f1"}
    assert all(p.fake.startswith(p.real + "f") for p in pairing.pairs)


def test_the_seed_fixes_the_random_picks():
    rows = rows_for([12, 7, 3])
    one = pair_frames(rows, FRAMES, random.Random(11)).pairs
    assert pair_frames(rows, FRAMES, random.Random(11)).pairs == one
    assert pair_frames(rows, FRAMES, random.Random(12)).pairs != one
    assert len(pair_frames(rows, FRAMES, random.Random(12)).pairs) == len(one)


def test_pairing_on_the_kaggle_layout(kaggle_data):
    data = prepare_data(TrainConfig(kaggle_data), seed=1)
    assert data.pairing.pairs_per_original == EXPECTED
    assert len(data.pairing.pairs) == 41 and len(data.samples) == 82 and not data.skipped
    assert sum(s.label for s in data.samples) == 41  # balanced: one REAL and one FAKE per pair
    assert data.pairing.reals_without_fakes == ("real05",)
    assert data.pairing.fakes_without_original == ("orphan",)
    for s in data.samples:
        assert (data.images / s.image).is_file() and s.image == f"{s.video}/{s.frame}.jpg"


def test_missing_and_unreadable_images_are_reported_and_their_pairs_skipped(kaggle_data, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(kaggle_data, data_dir)
    images = data_dir / "images"
    pairs = prepare_data(TrainConfig(data_dir), seed=4).pairing.pairs
    ten = [p for p in pairs if p.real == "real03"]  # 10 fakes: every frame is paired
    (images / "real03" / "30.jpg").unlink()
    fake = next(p for p in ten if p.frame == 90)
    (images / fake.fake / "90.jpg").write_bytes(b"not a jpeg")

    data = prepare_data(TrainConfig(data_dir), seed=4)
    reasons = {s.image: s.reason for s in data.skipped}
    assert reasons == {"real03/30.jpg": "missing", f"{fake.fake}/90.jpg": "unreadable (cv2.imread cannot decode it)"}
    assert len(data.pairing.pairs) == 41  # the metadata fixes the pairs ...
    assert len(data.samples) == 2 * 39  # ... and the two broken pairs are dropped whole, staying balanced
    assert sum(s.label for s in data.samples) == 39

    out = tmp_path / "dry"
    assert main(["train", str(data_dir), "--output", str(out), "--dry-run", "--seed", "4", "-q"]) == 0
    written = json.loads((out / "data.json").read_text())
    assert (written["pairs_from_metadata"], written["pairs_skipped"], written["pairs_used"]) == (41, 2, 39)
    assert {s["image"]: s["reason"] for s in written["skipped"]} == reasons
    unused = [r for r in read_csv(out / "pairs.csv") if r["used"] == "no"]
    assert len(unused) == 2 and all(r["reason"] for r in unused)


# --- splits -------------------------------------------------------------------------------------


def test_frame_split_is_stratified_79_21_and_reproducible(kaggle_data):
    config = TrainConfig(kaggle_data)
    a, b = prepare_data(config, seed=1), prepare_data(config, seed=1)
    assert (a.train, a.test) == (b.train, b.test)
    assert len(a.test) == 18 and len(a.train) == 64  # sklearn: ceil(0.21 * 82) for testing
    assert sorted(a.train + a.test) == list(range(82))
    fake_test = sum(a.samples[i].label for i in a.test)
    assert fake_test == 9  # stratified: half of the 18 test images are FAKE
    assert a.split["kind"] == "frame" and a.split["originals_on_both_sides"] > 0  # the leak is reported
    other = prepare_data(TrainConfig(kaggle_data, split_seed=7), seed=1)
    assert other.test != a.test


def test_by_original_split_keeps_a_real_video_and_its_fakes_on_one_side(kaggle_data, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(kaggle_data), "--output", str(out), "--split", "by-original", "--dry-run",
                 "--seed", "2", "-q"]) == 0
    sides = defaultdict(set)
    rows = read_csv(out / "split.csv")
    for r in rows:
        sides[r["original"]].add(r["side"])
        assert r["video"] == r["original"] or r["video"].startswith("fake" + r["original"][4:6])
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 5
    assert {r["side"] for r in rows} == {"train", "test"}
    split = json.loads((out / "data.json").read_text())["split"]
    assert split["kind"] == "by-original" and split["originals_on_both_sides"] == 0
    assert split["test"]["real"] == split["test"]["fake"]  # whole groups of pairs stay balanced
    config = json.loads((out / "config.json").read_text())
    assert config["split"] == "by-original" and config["seed"] == 2 and config["split_seed"] == 63


# --- the model ----------------------------------------------------------------------------------


def test_model_is_effnetb0_called_with_training_false_under_the_reference_head():
    import keras

    model, base = build_model(TrainConfig(Path("."), weights="none", input_size=32))
    assert base.name == "efficientnetb0" and model.input_shape == (None, 32, 32, 3)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Functional", "GlobalAveragePooling2D", "Dropout", "Dense"]
    assert model.layers[3].rate == 0.4 and model.output_shape == (None, 1)
    assert model.layers[-1].activation is keras.activations.sigmoid
    (node,) = model.get_config()["layers"][1]["inbound_nodes"]
    assert node["kwargs"]["training"] is False


@pytest.mark.parametrize("profile", ["reference", "keras"])
def test_images_stream_from_disk_preprocessed_by_the_profile(kaggle_data, profile):
    import cv2

    from dfscan.train import make_dataset, sidecar_data

    config = TrainConfig(kaggle_data, preprocess=profile, input_size=32)
    data = prepare_data(config, seed=1)
    picked = data.test[:3]
    x, y = next(iter(make_dataset(data, picked, config.preprocessing(), batch_size=3)))
    for n, i in enumerate(picked):
        img = cv2.resize(cv2.imread(str(data.images / data.samples[i].image)), (32, 32))
        if profile == "reference":  # the model card's recipe: BGR, resized, / 255.0, float32
            expected = (img / 255.0).astype(np.float32)
        else:  # RGB in 0..255, what Keras' EfficientNet expects
            expected = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
        assert np.array_equal(x[n].numpy(), expected)
        assert y[n].numpy().tolist() == [float(data.samples[i].label)]
    order, scale = ("BGR", "0..1") if profile == "reference" else ("RGB", "0..255")
    side = sidecar_data(config, data, config.preprocessing(), None, "training", Path("run"))
    assert (side["preprocessing"]["color_order"], side["preprocessing"]["scale"]) == (order, scale)
    assert side["architecture"] == "efficientnetb0-gap-dropout0.4-dense1-sigmoid"  # the default backbone's


@pytest.mark.slow
def test_the_scanner_builds_the_trained_network_from_its_sidecar(tmp_path):
    """A model `dfscan train` saves fits the network its sidecar names: the scanner builds it in
    code, reads only the weights, and scores as the trained model does."""
    import keras

    from dfscan.classifier.model import Classifier, _load_keras
    from dfscan.classifier.model_info import describe_local_model

    config = TrainConfig(Path("."), weights="none", input_size=32)
    keras.utils.set_random_seed(4)
    model, _ = build_model(config)
    x = (np.random.default_rng(1).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    inputs = np.stack([config.preprocessing().apply(c) for c in x])
    # a random backbone's features barely differ: aim the head at their differences, to spread the scores
    features = keras.Model(model.inputs, model.layers[-3].output).predict(inputs, verbose=0).astype(np.float64)
    centred = features - features.mean(0)
    w = centred.T @ np.random.default_rng(0).standard_normal(len(centred))
    w *= 2.0 / (centred @ w).std()
    model.layers[-1].set_weights([w.reshape(-1, 1).astype(np.float32), np.array([-(features.mean(0) @ w)], np.float32)])
    model.save(tmp_path / "best_model.keras")
    side = {"architecture": "efficientnetb0-gap-dropout0.4-dense1-sigmoid",
            "preprocessing": {"input_size": [32, 32]}}
    (tmp_path / "best_model.json").write_text(json.dumps(side))
    info = describe_local_model(tmp_path / "best_model.keras")
    assert info.architecture == side["architecture"]
    assert _load_keras(info).name != model.name  # built in code, not the file's graph
    want = model.predict(inputs, verbose=0).ravel()
    assert np.ptp(want) > 0.05
    assert np.abs(Classifier(info, "cpu").predict(list(x)) - want).max() < 1e-4


def test_weights_from_a_file(tmp_path):
    import keras

    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "effnet_notop.weights.h5"
    source.save_weights(path)
    _, base = build_model(TrainConfig(Path("."), weights=str(path), input_size=32))
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), source.get_weights()))
    with pytest.raises(ConfigError, match="no such file"):
        build_model(TrainConfig(Path("."), weights=str(tmp_path / "nope.h5"), input_size=32))


def test_an_input_size_dfscan_cannot_scan_with_is_refused_before_anything_is_written(tmp_path):
    """A model trained at a size the scanner refuses (model_info.MAX_INPUT_SIDE) would be useless."""
    from dfscan.classifier.model_info import MAX_INPUT_SIDE

    TrainConfig(tmp_path, input_size=MAX_INPUT_SIDE)
    with pytest.raises(ConfigError, match="at most"):
        TrainConfig(tmp_path, input_size=MAX_INPUT_SIDE + 1)


def test_mixed_precision_is_refused_on_a_cpu(kaggle_data, tmp_path, capsys):
    out = tmp_path / "mp"
    assert main(["train", str(kaggle_data), "--output", str(out), "--mixed-precision", "--weights", "none"]) == 2
    assert "--mixed-precision needs a GPU" in capsys.readouterr().err and not out.exists()


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(kaggle_data, tmp_path_factory):
    """`dfscan train` with the real EfficientNetB0, random weights, a small input, one epoch a phase."""
    out = tmp_path_factory.mktemp("train") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(["train", str(kaggle_data), "--output", str(out), "--weights", "none", "--input-size", "32",
                     "--epochs", "1", "--seed", "5", "--eager"])
    assert code == 0, stderr.getvalue()
    (out.parent / "stdout.txt").write_text(stdout.getvalue())
    (out.parent / "stderr.txt").write_text(stderr.getvalue())
    return out


@pytest.mark.slow
def test_run_reports_progress_and_compares_with_the_published_numbers(trained):
    printed = (trained.parent / "stdout.txt").read_text()
    assert "pairs: 41 used of 41" in printed and "split: frame" in printed and "seed: 5" in printed
    assert "0.8884" in printed and "[[549, 164], [126, 586]]" in printed and "phase 2: 1 of 1 epochs" in printed
    progress = (trained.parent / "stderr.txt").read_text()
    assert "phase 1 epoch 1/1" in progress and "phase 2 epoch 1/1" in progress and "val_auc" in progress


@pytest.mark.slow
def test_run_writes_checkpoint_sidecar_config_metrics_and_logs(trained):
    assert (trained / "best_model.keras").stat().st_size > 1_000_000
    side = json.loads((trained / "best_model.json").read_text())
    assert side["preprocessing"] == {"input_size": [32, 32], "color_order": "BGR", "scale": "0..1", "resize": "stretch"}
    assert side["threshold"] == 0.5 and side["name"] == "dfscan-train:run" and side["training"]["status"] == "finished"
    assert side["split"]["kind"] == "frame" and "frame-level split" in side["metrics"]["split"]
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix"} <= set(side["metrics"])

    config = json.loads((trained / "config.json").read_text())
    assert (config["seed"], config["weights"], config["test_size"], config["split_seed"]) == (5, "none", 0.21, 63)
    assert config["phase_epoch_limits"] == [1, 1] and config["batch_size"] == 32 and config["preprocess"] == "reference"

    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["test"]["n"] == 18 and metrics["data"]["pairs_per_original"] == EXPECTED
    assert [p["phase"] for p in metrics["phases"]] == [1, 2]
    assert [p["base_trainable"] for p in metrics["phases"]] == [False, True]
    assert [p["learning_rate"] for p in metrics["phases"]] == [1e-4, 1e-5]
    for p in metrics["phases"]:
        assert {"auc", "accuracy", "precision", "recall", "f1", "val_auc", "val_f1"} <= set(p["history"])
    assert metrics["checkpoint"]["phase"] in (1, 2)
    for phase in ("phase1", "phase2"):
        assert list((trained / "logs" / phase).rglob("events.out.tfevents.*")), phase


@pytest.mark.slow
def test_test_metrics_are_those_of_the_saved_predictions(trained):
    from sklearn import metrics as skm

    rows = read_csv(trained / "test_predictions.csv")
    y = [int(r["label"] == "FAKE") for r in rows]
    p = np.array([float(r["score"]) for r in rows])
    m = json.loads((trained / "metrics.json").read_text())["test"]
    assert len(rows) == 18 and sum(y) == 9
    # The scores are written in full, so every metric follows from the file exactly, wherever the scores
    # fall (an untrained network puts them all near 0.5, where rounding would move some across it).
    assert m["confusion_matrix"] == skm.confusion_matrix(y, p > 0.5, labels=[0, 1]).tolist()
    assert m["accuracy"] == skm.accuracy_score(y, p > 0.5)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), rel=0, abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)), rel=1e-9)


def test_saved_predictions_give_back_the_metrics_wherever_the_scores_fall(kaggle_data, tmp_path):
    """An untrained network scores everything within a float32 step of 0.5: the file must keep that step."""
    from sklearn import metrics as skm

    from dfscan.train.artifacts import measure_test_split, write_predictions

    data = prepare_data(TrainConfig(kaggle_data), seed=1)
    half = np.float32(0.5)
    above, below = np.nextafter(half, np.float32(1)), np.nextafter(half, np.float32(0))
    scores = np.array([above if i % 3 else below for i in range(len(data.test))], np.float32)
    write_predictions(tmp_path / "test_predictions.csv", data, scores)
    rows = read_csv(tmp_path / "test_predictions.csv")
    y, p = [int(r["label"] == "FAKE") for r in rows], np.array([float(r["score"]) for r in rows])
    assert p.tolist() == scores.astype(np.float64).tolist()  # every score exactly as the model gave it
    m = measure_test_split(data, scores)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, p > 0.5, labels=[0, 1]).tolist()
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-12)


@pytest.mark.slow
def test_scan_uses_the_trained_model_with_no_extra_flags(trained, clips, tmp_path, capsys):
    report = tmp_path / "scan.csv"
    code = main(["scan", str(clips["fake_mp4"]), "--model", str(trained / "best_model.keras"), "--csv", str(report)])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "no metadata" not in err  # the sidecar gave the preprocessing
    (row,) = read_csv(report)
    assert row["verdict"] in ("FAKE", "REAL") and row["faces_scored"] == "10"
    assert row["model"].startswith("dfscan-train:run sha256:")


def patch_crops(label, rng, n):
    """Faces in a random colour cast per video (both classes alike); FAKE ones carry a magenta patch.

    Separable by a trained network, but not by the colour a random one reads: the test checks
    that premise on the untrained model before crediting the trained one.
    """
    face = cv2.resize(face_photo(), (40, 40)).astype(np.float32)
    cast = rng.uniform(0.4, 1.6, 3)
    out = []
    for _ in range(n):
        img = face * cast + rng.normal(0, 10, face.shape)
        if label == "FAKE":
            y, x = rng.integers(2, 22, 2)
            img[y: y + 16, x: x + 16] = (255, 0, 255)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def tiny_network(config):
    """A few convolutions under the reference head: small enough to learn on a CPU in seconds."""
    import keras

    inputs = keras.Input((config.input_size, config.input_size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    return with_head(config, keras.Model(inputs, x, name="tiny_backbone"), name="dfscan_tiny")


@pytest.mark.slow
def test_training_learns_a_separable_task_on_held_out_videos_and_is_reproducible(tmp_path):
    import keras
    from sklearn.metrics import roc_auc_score

    from dfscan.train import make_dataset

    data_dir = make_kaggle_dataset(tmp_path / "data", KAGGLE_FAKES, crops=patch_crops)
    config = TrainConfig(data_dir, weights="none", input_size=32, split="by-original",
                         phase1_epochs=2, phase2_epochs=10, phase1_lr=3e-3, phase2_lr=1e-3, seed=9,
                         deterministic=True)
    one = train(replace(config, output=tmp_path / "a"), build=tiny_network)
    assert one.data.split["originals_on_both_sides"] == 0  # the test videos were never seen in training
    # the untrained network, same seed, on the same held-out images: no better than chance
    keras.utils.set_random_seed(9)
    untrained, _ = tiny_network(config)
    test = make_dataset(one.data, one.data.test, config.preprocessing(), 64)
    labels = [one.data.samples[i].label for i in one.data.test]
    before = roc_auc_score(labels, np.concatenate([untrained.predict(x, verbose=0).ravel() for x, _ in test]))
    assert before < 0.9  # the premise: random features do not already solve it
    assert one.metrics["roc_auc"] > 0.95 and one.metrics["n"] == len(one.data.test) >= 20
    assert max(one.phases[-1].history["val_auc"]) > 0.95  # Keras' own held-out AUC climbed there too

    side = json.loads((tmp_path / "a" / "best_model.json").read_text())
    assert side["training"]["backbone"] == "tiny_backbone" and "architecture" not in side  # Keras loads it
    two = train(replace(config, output=tmp_path / "b"), build=tiny_network)
    assert (tmp_path / "a" / "test_predictions.csv").read_text() == (tmp_path / "b" / "test_predictions.csv").read_text()
    assert two.metrics == one.metrics and two.phases == one.phases


# --- the command line ---------------------------------------------------------------------------


def test_default_output_is_a_new_timestamped_folder_never_reused(kaggle_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["train", str(kaggle_data), "--dry-run", "-q"]) == 0
    runs = sorted(tmp_path.glob("dfscan-train-*"))
    assert len(runs) == 2 and all((r / "split.csv").is_file() for r in runs)
    seeds = {json.loads((r / "config.json").read_text())["seed"] for r in runs}
    assert all(isinstance(s, int) for s in seeds)  # a drawn seed is recorded, so the run can be repeated


def test_usage_errors_exit_2_and_leave_no_empty_run_folder(kaggle_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("mine")
    assert main(["train", str(kaggle_data), "--output", str(taken), "--dry-run"]) == 2
    assert "already exists" in capsys.readouterr().err and (taken / "x").read_text() == "mine"
    assert main(["train", str(tmp_path), "--dry-run"]) == 2
    assert "dfdc-part-34 layout" in capsys.readouterr().err
    assert main(["train", str(kaggle_data), "--weights", str(tmp_path / "none.h5"), "--output", str(tmp_path / "w")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_help_of_train_and_evaluate_does_not_import_tensorflow():
    done = cli_in_fresh_process([["train", "--help"], ["evaluate", "--help"]],
                                ("tensorflow", "keras", "sklearn", "matplotlib"))
    assert done.returncode == 0, done.stderr
    assert "--split [frame|by-original]" in done.stdout and "--labels FILE" in done.stdout
