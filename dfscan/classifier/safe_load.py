"""Opening `.keras` files without letting them run code or exhaust the machine.

A `.keras` file is a zip of `config.json` (the graph), `metadata.json` and `model.weights.h5`.
Before Keras opens anything, the archive's entries are checked (names, count, declared sizes,
compression ratio: a zip bomb is refused without inflating it), and so is the weights file's
layout (declared array sizes must fit in the file: no HDF5 bomb either).

Networks dfscan knows (a registry entry or sidecar names one in `architecture`) are built here
in code; only `model.weights.h5` is read from the archive, whatever else it holds, so a Lambda
layer in its graph never runs. Other files are loaded by Keras with `safe_mode=True`, after a
look at `config.json` as plain JSON that names any Lambda layer or foreign module up front.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..common.errors import ModelError, first_line
from ..common.leftovers import prefix as leftover_prefix

MiB = 1 << 20
GiB = 1 << 30
MAX_MODEL_FILE = 2 * GiB  # the reference model is 17 MB; EfficientNetB7 with its head is ~260 MB
MAX_ENTRIES = 64
# What a Keras 3 archive holds, with the most each entry may inflate to.
# config.json is parsed whole: 8 MiB of tiny JSON lists takes ~220 MB of Python objects (64 MiB took
# ~1.7 GB). EfficientNetB0's is ~0.1 MB; the largest Keras application's a few MB.
ENTRY_LIMITS = {"config.json": 8 * MiB, "metadata.json": 1 * MiB, "model.weights.h5": 2 * GiB}
ASSET_LIMIT = 64 * MiB  # assets/... (vocabularies of text layers)
MAX_TOTAL = 2 * GiB + 128 * MiB
MAX_RATIO = 100  # Keras stores entries uncompressed; JSON deflates ~10x; zeros deflate ~1000x
RATIO_FREE_BYTES = 4 * MiB  # small entries may compress as they like
WEIGHTS = "model.weights.h5"


def regular_file(path: str | os.PathLike, what: str = "model file") -> Path:
    """The path, if it is a regular file (links followed) of sane size; else a ModelError at once."""
    path = Path(path).expanduser()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"--model must be a .keras file, not a folder: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"the {what} {path} is not a regular file (a device, pipe or socket): refused")
    if st.st_size > MAX_MODEL_FILE:
        raise ModelError(f"the {what} {path} is {st.st_size / GiB:.1f} GiB; dfscan accepts model files up to "
                         f"{MAX_MODEL_FILE / GiB:.0f} GiB")
    return path


def check_archive(path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by name, once each is known to be what a Keras archive holds, of bounded size."""
    path = regular_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelError(f"cannot load the model {path}: not a .keras archive ({first_line(exc, 200)})") from exc
    if len(infos) > MAX_ENTRIES:
        raise ModelError(f"{path} holds {len(infos)} entries; a Keras archive holds a few: refused")
    seen: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        limit = ENTRY_LIMITS.get(name) or (ASSET_LIMIT if _is_asset(name) else None)
        if limit is None:
            raise ModelError(f"{path} holds {_shown(name)}, which is not part of a Keras archive "
                             f"(expected {', '.join(ENTRY_LIMITS)} and assets/): refused")
        if name in seen:
            raise ModelError(f"{path} holds {_shown(name)} twice: refused")
        if info.flag_bits & 0x1:
            raise ModelError(f"{path}: {_shown(name)} is encrypted: refused")
        if info.file_size > limit:
            raise ModelError(f"{path}: {_shown(name)} would inflate to {info.file_size / MiB:.0f} MiB "
                             f"(at most {limit / MiB:.0f} MiB): refused")
        if info.file_size > RATIO_FREE_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ModelError(f"{path}: {_shown(name)} inflates {info.file_size / max(info.compress_size, 1):.0f}x "
                             f"({info.compress_size} bytes to {info.file_size}), like a zip bomb: refused")
        total += info.file_size
        seen[name] = info
    if total > MAX_TOTAL:
        raise ModelError(f"{path} would inflate to {total / GiB:.1f} GiB: refused")
    for need in ("config.json", WEIGHTS):
        if need not in seen:
            raise ModelError(f"cannot load the model {path}: the archive has no {need}")
    return seen


def _is_asset(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "assets" and ".." not in parts and not name.startswith("/") and "\\" not in name


def _shown(name: str) -> str:
    return repr(name[:120])


def read_config(path: Path) -> dict[str, Any]:
    """config.json as plain data (never handed to Keras' deserialiser here)."""
    entries = check_archive(path)
    with zipfile.ZipFile(path) as zf, zf.open(entries["config.json"]) as fh:
        raw = fh.read(ENTRY_LIMITS["config.json"] + 1)
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
        raise ModelError(f"cannot load the model {path}: its config.json is not JSON ({first_line(exc)})") from exc
    if not isinstance(config, dict):
        raise ModelError(f"cannot load the model {path}: its config.json is not an object")
    return config


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every serialised Keras object (a dict with a class_name) in a config, depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def code_layers(config: dict[str, Any]) -> list[str]:
    """Names of the layers whose config carries Python code (Lambda and its kin)."""
    found = []
    for obj in _objects(config):
        if obj["class_name"] in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
            cfg = obj.get("config") if isinstance(obj.get("config"), dict) else {}
            found.append(f"{obj['class_name']} layer {str(cfg.get('name', '?'))[:80]!r}")
    return found


# Keras functions a network's config may name (activations, ops, losses, metrics). Others, such as
# keras.utils.get_file, are not part of a network: older Keras (3.0-3.10) called them in safe mode.
_MODELING_FUNCTIONS = re.compile(r"keras(\.src)?\.(activations|ops|losses|metrics)(\..+)?")


def foreign_objects(config: dict[str, Any]) -> list[str]:
    """Objects that name code outside a Keras network: modules outside Keras, or non-modeling Keras functions."""
    found = []
    for obj in _objects(config):
        module = obj.get("module")
        shown = f"{str(obj['class_name'])[:60]} from module {str(module)[:60]!r}"
        if module is not None and (not isinstance(module, str) or not (module == "keras" or
                                                                       module.startswith("keras."))):
            found.append(shown)
        elif obj["class_name"] == "function" and module is not None and not _MODELING_FUNCTIONS.fullmatch(module):
            found.append(f"function {str(obj.get('config'))[:60]!r} from module {str(module)[:60]!r}")
    return found


@contextmanager
def extracted_weights(path: Path) -> Iterator[Path]:
    """model.weights.h5, inflated into a private temporary folder that is removed afterwards."""
    entries = check_archive(path)
    info = entries[WEIGHTS]
    # 0700: other users cannot read or swap it; the pid in the name lets a later scan sweep it
    # (dfscan/common/leftovers.py)
    folder = Path(tempfile.mkdtemp(prefix=leftover_prefix("dfscan-weights-")))
    try:
        target = folder / WEIGHTS
        _inflate(path, info, target)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _inflate(path: Path, info: zipfile.ZipInfo, target: Path) -> None:
    """One entry to a new file, never past its declared size (the header may lie)."""
    written = 0
    try:
        with zipfile.ZipFile(path) as zf, zf.open(info) as src, open(target, "xb") as dst:
            while block := src.read(4 * MiB):
                written += len(block)
                if written > info.file_size:
                    raise ModelError(f"{path}: {WEIGHTS} inflates beyond its declared size: refused")
                dst.write(block)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelError(f"cannot load the model {path}: {first_line(exc, 200)}") from exc


def weights_layout(h5_path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every array of a Keras weights file: path -> (shape, dtype), checked to fit in the file.

    A dataset may declare any shape while storing nothing (or storing it compressed); reading it
    would then allocate the declared size. Keras writes neither, so both are refused.
    """
    import h5py

    size = h5_path.stat().st_size
    layout: dict[str, tuple[tuple[int, ...], str]] = {}
    declared = 0
    problems: list[str] = []

    def visit(name: str, obj) -> None:
        nonlocal declared
        if isinstance(obj, h5py.Group):
            problems.extend(_link_problems(obj, name + "/"))
        elif isinstance(obj, h5py.Dataset):
            problem = _dataset_problem(obj)
            if problem:
                problems.append(f"array {name[:120]!r} {problem}")
            declared += int(obj.size) * obj.dtype.itemsize
            layout[name] = (tuple(int(d) for d in obj.shape), obj.dtype.str)

    try:
        with h5py.File(h5_path, "r") as f:
            problems.extend(_link_problems(f, ""))
            f.visititems(visit)  # each object once, through hard links only
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read the model's weights: {first_line(exc, 200)}") from exc
    if problems:
        raise ModelError(f"the model's weights file is not as Keras writes it ({problems[0]}): refused")
    if declared > size + MiB:
        raise ModelError(f"the model's weights declare {declared / MiB:.0f} MiB of arrays in a "
                         f"{size / MiB:.0f} MiB file: refused")
    return layout


def _dataset_problem(ds) -> str | None:
    """Why an HDF5 array is not one Keras writes: stored elsewhere, compressed, or not plain numbers."""
    if ds.is_virtual or ds.external:
        return "is stored outside the file"  # reading it would read other files of this machine
    if ds.id.get_create_plist().get_nfilters():
        return "is compressed"
    if ds.dtype.kind not in "biuf":
        return f"holds {ds.dtype} values, not numbers"
    return None


def _link_problems(group, prefix: str) -> list[str]:
    """The group's links that are not hard links: to other files, or by name (Keras writes neither)."""
    import h5py

    found = []
    for key in group:
        link = group.get(key, getlink=True)  # the link itself: an external one is not followed
        if not isinstance(link, h5py.HardLink):
            found.append(f"{(prefix + key)[:120]!r} is a {type(link).__name__}")
    return found


# -- networks dfscan builds in code ------------------------------------------------------------


def _efficientnetb0_head(keras, input_size: tuple[int, int], channels_first: bool = False):
    """EfficientNetB0 (called with training=False) -> GAP -> Dropout(0.4) -> Dense(1, sigmoid).

    The reference notebook's network. Keras addresses weights by layer class and order, not by
    name, so these default names need not match the file's. `channels_first`: the same network
    and weights computing in (N, C, H, W) inside, for Keras' OpenVINO export (see export_twin);
    it still takes (N, H, W, C) images.
    """
    h, w = input_size
    inputs = keras.Input((h, w, 3))
    if channels_first:
        with _image_data_format(keras, "channels_first"):
            base = keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=(3, h, w))
        x = base(keras.layers.Permute((3, 1, 2))(inputs), training=False)
        x = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    else:
        base = keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=(h, w, 3))
        x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    x = keras.layers.Dropout(0.4)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


@contextmanager
def _image_data_format(keras, value: str) -> Iterator[None]:
    """Keras applications read the layout from a process-wide setting: set it while one is built."""
    before = keras.config.image_data_format()
    keras.config.set_image_data_format(value)
    try:
        yield
    finally:
        keras.config.set_image_data_format(before)


REFERENCE_ARCHITECTURE = "efficientnetb0-gap-dropout0.4-dense1-sigmoid"  # the reference model's; `dfscan train`'s
ARCHITECTURES: dict[str, Callable[..., Any]] = {REFERENCE_ARCHITECTURE: _efficientnetb0_head}


def build_known(keras, path: Path, architecture: str, input_size: tuple[int, int]):
    """The named network built in code, with the weights of `path` (nothing else of it is used)."""
    builder = ARCHITECTURES.get(architecture)
    if builder is None:
        raise ModelError(f"unknown architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})")
    model = builder(keras, tuple(input_size))
    with tempfile.TemporaryDirectory(prefix=leftover_prefix("dfscan-layout-")) as tmp:
        reference = Path(tmp) / "expected.weights.h5"
        model.save_weights(reference)  # the layout this network's weights file must have
        expected = weights_layout(reference)
    with extracted_weights(path) as h5:
        got = _network_arrays(weights_layout(h5))
        if _kinds(got) != _kinds(expected):
            raise ModelError(f"the weights in {path} do not fit the {architecture} network: "
                             + _layout_difference(expected, got))
        try:
            model.load_weights(h5)
        except Exception as exc:  # Keras raises ValueError, KeyError, OSError...
            raise ModelError(f"cannot load the weights of {path} into {architecture}: {first_line(exc, 300)}") from exc
    return model


def _network_arrays(layout: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, tuple[tuple[int, ...], str]]:
    """The arrays of the network, without the optimizer's state that a file saved while training keeps
    (Keras' ModelCheckpoint, which wrote the reference model, and `dfscan train` save compiled models).
    Those arrays were checked like the rest (weights_layout); loading into this uncompiled network skips them."""
    return {k: v for k, v in layout.items() if not k.startswith("optimizer/")}


def export_twin(keras, model, architecture: str, input_size: tuple[int, int]):
    """The known network `model` was built as, computing channels-first, with `model`'s weights.

    Keras' OpenVINO backend computes in (N, H, W, C) by wrapping every convolution and batch norm in
    transposes to OpenVINO's (N, C, H, W) and back; OpenVINO's CPU plugin keeps most of them (145
    of 942 runtime nodes for EfficientNetB0), and the exported network ran ~4x slower than the same
    network traced through TensorFlow. Built channels-first, the export has one transpose, at the
    input. The weights are the same arrays in the same order.
    """
    twin = ARCHITECTURES[architecture](keras, tuple(input_size), channels_first=True)
    twin.set_weights(model.get_weights())
    return twin


def _kinds(layout: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Shapes, and dtypes by kind only: a counter Keras keeps as int64 under TensorFlow is int32
    under OpenVINO, and Keras casts when it loads; an integer array where floats belong is refused."""
    import numpy as np

    return {k: (shape, np.dtype(dtype).kind) for k, (shape, dtype) in layout.items()}


def _layout_difference(expected: dict, got: dict) -> str:
    expected, got = _kinds(expected), _kinds(got)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    changed = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    parts = []
    if missing:
        parts.append(f"{len(missing)} arrays missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected arrays (e.g. {extra[0]})")
    if changed:
        k = changed[0]
        parts.append(f"{len(changed)} arrays of another shape or type (e.g. {k}: {got[k]} instead of {expected[k]})")
    return "; ".join(parts)
