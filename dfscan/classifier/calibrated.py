"""Reading a calibration file (`dfscan evaluate`'s proposal, see dfscan/labelled/sidecar.py) given as
`--model FILE.json`.

It names the model it was made for (`calibration.model`: a registry name, an hf:// id or a path,
relative to the file); that model is loaded with the file's threshold and band, and its bytes must
still have the SHA-256 the calibration was measured on (`calibration.model_sha256`).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..common.errors import ModelError
from ..common.text import printable
from .model_info import ModelInfo, _band, _number, read_metadata

SCHEMA = "dfscan.calibration"


def is_calibration_spec(spec: str) -> bool:
    """Whether --model names a calibration file rather than a model."""
    return re.search(r"\.json$", spec, re.IGNORECASE) is not None and not spec.startswith("hf://")


def is_local(spec: str) -> bool:
    """Whether a model spec names a file (rather than a registry name or an hf:// id)."""
    return spec.endswith(".keras") or "/" in spec or Path(spec).expanduser().exists()


def calibrated_model(path: Path, resolve: Callable[[str | None], ModelInfo]) -> ModelInfo:
    """`--model calibration.json`: the model it names (loaded by `resolve`, the registry's), with the file's
    threshold and uncertain band."""
    meta = read_metadata(path)
    where = f"the calibration file {printable(str(path))}"
    cal = meta.get("calibration") if isinstance(meta, dict) else None
    if not isinstance(cal, dict) or cal.get("schema") != SCHEMA:
        raise ModelError(f"{where} is not a dfscan calibration (made by `dfscan evaluate`); a model's own "
                         "sidecar goes beside its .keras file, and --model names the .keras file")
    spec = cal.get("model")
    if spec is not None and not isinstance(spec, str):
        raise ModelError(f"{where}: calibration.model must be a model name, hf:// id or path")
    if spec is not None and spec.endswith(".json"):
        raise ModelError(f"{where}: calibration.model names another calibration file")
    if spec is not None and not spec.startswith("hf://") and is_local(spec) and not Path(spec).is_absolute():
        spec = str(path.parent / spec)
    info = resolve(spec)
    wanted = cal.get("model_sha256")
    if wanted is not None and wanted != info.sha256:
        raise ModelError(f"{where} was made for the model file with SHA-256 {printable(str(wanted))[:64]}, but "
                         f"{printable(info.name)} now has {info.sha256}: evaluate the model again")
    try:
        threshold = _number(meta.get("threshold", info.threshold), "threshold", 0.0, 1.0, open_interval=True)
        band = _band(meta.get("uncertain"), threshold)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    return replace(info, threshold=threshold, uncertain=band, metadata={**info.metadata, "calibration": cal})
