"""Test data made by the tests: synthetic clips with a real face photo, tiny Keras models."""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests check the CPU path; the GPU is measured in bench/
# Tests never reach the network nor read the developer's own hub cache.
os.environ["HF_HUB_OFFLINE"] = "1"
_OWN = tempfile.mkdtemp(prefix="dfscan-test-")  # this process's hub cache, store and conversions, removed at exit
atexit.register(shutil.rmtree, _OWN, True)
os.environ["HF_HUB_CACHE"] = os.path.join(_OWN, "hub")
os.environ["DFSCAN_STORE"] = os.path.join(_OWN, "store", "results.sqlite")
os.environ["DFSCAN_CACHE_DIR"] = os.path.join(_OWN, "cache")  # converted models (shared by xdist workers: below)
# Ray clusters started by tests put every node on 127.0.0.1 and listen there only. Ray reads this
# switch (meant for single-host platforms) when it is imported, and its processes inherit it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import cv2
import numpy as np
import pytest

from dfscan.classifier.runtime import no_telemetry

# No usage reports from OpenVINO in the test processes either: tests import Keras before dfscan would,
# and the reports' forked senders hang threaded workers.
no_telemetry()

FPS = 30
FRAME_SIZE = (480, 360)  # width, height


def cli_in_fresh_process(calls: list[list[str]], light: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Run `dfscan.cli.main(args)` for each call in a new interpreter; fail if any of `light` got imported."""
    code = ("import sys\nfrom dfscan.cli import main\n"
            f"assert all(main(args) == 0 for args in {calls!r})\n"
            f"heavy = [m for m in {light!r} if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)


def face_photo() -> np.ndarray:
    """A real face (RGB): the head and shoulders of scikit-image's astronaut."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[20:260, 120:340])


def tinted(img: np.ndarray, tint: str | None) -> np.ndarray:
    """Shift the photo's colour so a colour-reading model can tell 'fake' from 'real'."""
    if tint is None:
        return img
    out = img.astype(np.int16)
    channel = {"red": 0, "blue": 2}[tint]
    out[..., channel] += 90
    return np.clip(out, 0, 255).astype(np.uint8)


def frames_for(n_frames: int, size=FRAME_SIZE, face: bool = True, tint: str | None = None, seed: int = 0):
    """RGB frames: a textured background, and the face photo moving across it."""
    rng = np.random.default_rng(seed)
    w, h = size
    background = cv2.GaussianBlur(rng.integers(60, 200, (h, w, 3), dtype=np.uint8), (0, 0), 9)
    photo = tinted(face_photo(), tint)
    scale = min(0.8 * h / photo.shape[0], 0.6 * w / photo.shape[1], 1.0)
    photo = cv2.resize(photo, None, fx=scale, fy=scale)
    ph, pw = photo.shape[:2]
    for i in range(n_frames):
        frame = background.copy()
        if face:
            x = int((w - pw) * (0.5 + 0.4 * np.sin(i / 25)))
            y = int((h - ph) * (0.5 + 0.3 * np.cos(i / 40)))
            frame[y: y + ph, x: x + pw] = photo
        yield frame


def two_face_frames(n_frames: int, size=(640, 360), tint: str | None = "red"):
    """RGB frames with the face photo twice, side by side: two faces in every frame."""
    w, h = size
    background = cv2.GaussianBlur(np.random.default_rng(5).integers(60, 200, (h, w, 3), dtype=np.uint8), (0, 0), 9)
    photo = tinted(face_photo(), tint)
    scale = min(0.8 * h / photo.shape[0], 0.45 * w / photo.shape[1])
    photo = cv2.resize(photo, None, fx=scale, fy=scale)
    ph, pw = photo.shape[:2]
    gap = (w - 2 * pw) // 3
    y = (h - ph) // 2
    for _ in range(n_frames):
        frame = background.copy()
        for x in (gap, 2 * gap + pw):
            frame[y: y + ph, x: x + pw] = photo
        yield frame


def write_opencv(path: Path, frames, fourcc: str = "mp4v", fps: float = FPS) -> Path:
    frames = list(frames)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_ffmpeg(path: Path, frames, codec_args: list[str], fps: float = FPS) -> Path:
    """Encode RGB frames with the ffmpeg binary that imageio-ffmpeg ships."""
    import imageio_ffmpeg

    frames = list(frames)
    h, w = frames[0].shape[:2]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", *codec_args, str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "120", "-bf", "2", "-preset", "veryfast"]
VP9 = ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "500k", "-deadline", "realtime", "-cpu-used", "8"]


def _xdist_worker() -> str | None:
    return os.environ.get("PYTEST_XDIST_WORKER")


def shared(tmp_path_factory, name: str, make) -> Path:
    """A folder made once per test run: `make(folder)` fills it. Under pytest-xdist the workers share it
    (the first builds it under a file lock, the others wait and reuse it), so that session data and the
    models built from it have the same bytes everywhere, and a model is converted once, not per worker."""
    if _xdist_worker() is None:
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name  # the run's folder above each worker's own
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def _conversions_shared_by_workers(tmp_path_factory):
    """Under pytest-xdist: one cache of converted models for every worker (dfscan locks each conversion)."""
    if _xdist_worker() is not None:
        os.environ["DFSCAN_CACHE_DIR"] = str(tmp_path_factory.getbasetemp().parent / "converted-models")
    yield


def build_colour_model(path: Path, input_size: int = 224):
    """A tiny model with the reference interface, (N,224,224,3) -> (N,1) sigmoid.

    Its score reads the crop's colour: in BGR order it is high for red faces and
    low for blue ones, so tinted clips have known verdicts.
    """
    import keras

    inputs = keras.Input((input_size, input_size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    # input channels are B, G, R (reference profile): score = sigmoid(12 * (R - B))
    model.layers[-1].set_weights([np.array([[-12.0], [0.0], [12.0]], np.float32), np.zeros(1, np.float32)])
    model.save(path)
    return path


@pytest.fixture(scope="session")
def colour_model(tmp_path_factory) -> Path:
    return shared(tmp_path_factory, "model", lambda d: build_colour_model(d / "colour.keras")) / "colour.keras"


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A folder of short clips: red (FAKE) and blue (REAL) faces, no face, several containers."""
    names = {"fake_mp4": "fake_red.mp4", "real_avi": "real_blue.avi", "noface_mp4": "sub/no_face.mp4",
             "fake_h264": "sub/fake_h264.MP4", "short_webm": "short_blue.webm"}

    def make(root: Path) -> None:
        (root / "sub").mkdir()
        write_opencv(root / names["fake_mp4"], frames_for(300, tint="red"))
        write_opencv(root / names["real_avi"], frames_for(300, tint="blue", seed=1), "MJPG")
        write_opencv(root / names["noface_mp4"], frames_for(300, face=False, seed=2))
        write_ffmpeg(root / names["fake_h264"], frames_for(300, tint="red", seed=3), H264)
        write_ffmpeg(root / names["short_webm"], frames_for(24, tint="blue", seed=4), VP9)
        (root / "notes.txt").write_text("not a video")

    root = shared(tmp_path_factory, "clips", make)
    return {"root": root, **{key: root / name for key, name in names.items()}}


@pytest.fixture(scope="session")
def two_faces(tmp_path_factory) -> Path:
    """A clip with two (red, FAKE) faces in every frame."""
    return shared(tmp_path_factory, "two-faces",
                  lambda d: write_opencv(d / "two_faces.mp4", two_face_frames(300))) / "two_faces.mp4"


@pytest.fixture(autouse=True)
def _no_logging_setup_leaks():
    """Undo what the CLI's logging setup changes (dfscan's handlers, level and propagation, the hub's
    verbosity), so that a test that ran `main()` leaves later tests' logging as it found it."""
    loggers = [logging.getLogger(name) for name in ("dfscan", "dfscan.fetch", "dfscan.phase")]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    verbosity = os.environ.get("HF_HUB_VERBOSITY")
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved):
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
    if verbosity is None:
        os.environ.pop("HF_HUB_VERBOSITY", None)
    else:
        os.environ["HF_HUB_VERBOSITY"] = verbosity


def tinted_crops(label: str, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """One video's face crops: the astronaut, red-tinted for FAKE and blue for REAL, jittered."""
    base = tinted(face_photo(), "red" if label == "FAKE" else "blue").astype(np.int16) + int(rng.integers(-25, 25))
    crops = []
    for _ in range(n):
        y, x = rng.integers(0, 40, 2)
        side = int(rng.integers(40, 72))
        crop = cv2.resize(base[y: y + 180, x: x + 180].astype(np.float32), (side, side))
        crops.append(np.clip(crop + rng.normal(0, 8, crop.shape), 0, 255).astype(np.uint8))
    return crops


def make_kaggle_dataset(root: Path, fakes_per_original, frames=range(0, 271, 30), seed: int = 0,
                        extra_rows=(), crops=tinted_crops) -> Path:
    """A miniature dfdc-part-34 dataset: images/metadata34.csv and images/<video>/<frame>.jpg.

    Real video i has fakes_per_original[i] fakes. `crops(label, rng, n)` draws one video's
    RGB crops (default: small square JPEGs of the astronaut's face of varying size, blue for
    REAL, red for FAKE, so the classes are separable by colour but no two images are alike).
    `extra_rows` (filename, label, original) are added to the CSV without images.
    """
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for i, k in enumerate(fakes_per_original):
        real = f"real{i:02d}"
        rows.append((f"{real}.mp4", "REAL", ""))
        rows += [(f"fake{i:02d}x{j:02d}.mp4", "FAKE", f"{real}.mp4") for j in range(k)]
    rows = [rows[i] for i in rng.permutation(len(rows))]  # metadata order is arbitrary on Kaggle too
    frames = list(frames)
    for name, label, _ in rows:
        folder = images / name[:-4]
        folder.mkdir()
        for frame, crop in zip(frames, crops(label, rng, len(frames))):
            cv2.imwrite(str(folder / f"{frame}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    with open(images / "metadata34.csv", "w", newline="") as fh:
        fh.write("filename,label,split,original\n")
        for name, label, original in [*rows, *extra_rows]:
            fh.write(f"{name},{label},train,{original}\n")
    return root


# Real video i has KAGGLE_FAKES[i] fakes (the last has none); one fake names an original that is not listed.
KAGGLE_FAKES = (1, 2, 5, 10, 12, 0)
ORPHAN_FAKE = ("orphan.mp4", "FAKE", "nobody.mp4")


@pytest.fixture(scope="session")
def kaggle_data(tmp_path_factory) -> Path:
    """A miniature dfdc-part-34 dataset (read-only: copy it before changing anything)."""
    return shared(tmp_path_factory, "kaggle", lambda d: make_kaggle_dataset(d / "dfdc-part-34", KAGGLE_FAKES,
                                                                            extra_rows=[ORPHAN_FAKE])) / "dfdc-part-34"


def build_reference_like(path: Path, lambda_marker: Path | None = None, weights_from=None):
    """An EfficientNetB0 -> GAP -> Dropout(0.4) -> Dense(1, sigmoid) network, the reference's shape.

    Random weights, seeded, scaled so that its scores differ from crop to crop (an untouched
    random EfficientNetB0 scores every input 0.5, which would hide any mistake). With
    `lambda_marker`, a Lambda layer sits in the graph whose code touches that file when it
    runs: a file that would run code when loaded unsafely.
    """
    import keras

    keras.utils.set_random_seed(63)
    base = keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=(224, 224, 3))
    inputs = keras.Input((224, 224, 3))
    x = inputs
    if lambda_marker is not None:
        x = keras.layers.Lambda(lambda t, m: (open(m, "w").close(), t)[1], arguments={"m": str(lambda_marker)})(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.4)(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    if weights_from is not None:
        model.set_weights(weights_from.get_weights())
    else:
        for layer in base.layers:  # untrained activations shrink block by block; this keeps them ~1
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.gamma.assign(layer.gamma.numpy() * 1.65)
        probe = np.random.default_rng(0).random((8, 224, 224, 3), dtype=np.float32)
        features = keras.Model(inputs, x)(probe).numpy()
        k = np.random.default_rng(1).normal(0, 1, (features.shape[1], 1)).astype(np.float32)
        k *= 2 / ((features @ k).std() + 1e-12)
        model.layers[-1].set_weights([k, -(features @ k).mean(0).astype(np.float32)])
    model.save(path)
    return model


@pytest.fixture(scope="session")
def reference_like(tmp_path_factory):
    """{'clean': .keras, 'lambda': .keras with the same weights and a code-running Lambda, 'marker': path}."""
    def make(root: Path) -> None:
        clean = build_reference_like(root / "clean.keras")
        build_reference_like(root / "lambda.keras", lambda_marker=root / "lambda-ran", weights_from=clean)
        assert (root / "lambda-ran").exists()  # building the graph ran the Lambda's code: loading it unsafely would too
        (root / "lambda-ran").unlink()

    root = shared(tmp_path_factory, "reference-like", make)
    return {"clean": root / "clean.keras", "lambda": root / "lambda.keras", "marker": root / "lambda-ran"}


