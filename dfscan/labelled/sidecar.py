"""Calibration sidecars: a proposal from `dfscan evaluate` written as a model sidecar JSON.

One file serves two ways:
- kept beside a local model as `<model>.json`, it is that model's sidecar (name, preprocessing,
  output, threshold, uncertain band), read as every sidecar is (`model_info.describe_local_model`);
- passed itself as `--model calibration.json`, it names the model it was made for
  (`calibration.model`: a registry name, an hf:// id or a path, relative to the file) and that
  model is loaded with this file's threshold and band; its bytes must still have the SHA-256 the
  calibration was measured on (`calibration.model_sha256`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..classifier.calibrated import SCHEMA, is_local
from ..classifier.model_info import ModelInfo
from ..common.errors import DfscanError, ModelError
from .calibrate import Proposal


def sidecar_data(info: ModelInfo, spec: str | None, proposal: Proposal, source: dict[str, Any]) -> dict[str, Any]:
    """The sidecar JSON for `info` with the proposal's threshold and band; `spec` says how to load the model."""
    from .. import __version__
    from ..common.text import iso_time

    prep = info.preprocess
    preprocessing = {"input_size": list(prep.input_size), "color_order": prep.color_order, "scale": prep.scale,
                     "resize": prep.resize, **({"margin": info.margin} if info.margin is not None else {})}
    data: dict[str, Any] = {"name": info.name, "preprocessing": preprocessing, "output": info.output}
    if info.architecture:
        data["architecture"] = info.architecture
    data["threshold"] = proposal.threshold
    data["uncertain"] = proposal.band.as_list() if proposal.band else None
    data["calibration"] = {"schema": SCHEMA, "model": spec, "model_sha256": info.sha256, **source,
                           "evidence": proposal.evidence, "made": iso_time(), "dfscan_version": __version__}
    return data


def model_spec(info: ModelInfo, given: str | None) -> str | None:
    """How a calibration file names its model: the registry name or hf:// id given, a local file's absolute
    path, or None (the default model); a calibration file given as the model names what it names."""
    if given is not None and given.endswith(".json"):
        return (info.metadata.get("calibration") or {}).get("model")
    if given is None or given.startswith("hf://") or not is_local(given):
        return given
    return str(info.path.resolve())


def write_sidecar(path: Path, data: dict[str, Any], overwrite: bool = False) -> None:
    """Write a sidecar; an existing file (a user's own sidecar) is replaced only with `overwrite`."""
    from ..reports.writers import write_atomic

    write_atomic(path, json.dumps(data, indent=2) + "\n", overwrite=overwrite)


def write_calibration(result, config, proposal: Proposal, targets: list[tuple[Path, bool]]) -> list[Path]:
    """Write the proposal of an evaluation (`EvalResult`, `EvalConfig`) as a sidecar to each (path, overwrite)."""
    from ..classifier.registry import resolve_model

    info = resolve_model(config.scan.model, config.scan.offline)
    if info.sha256 != result.report["model"]["sha256"]:
        raise ModelError("the model's file changed during the evaluation: no calibration written")
    source = {"data": result.report["data"], "labels": result.report.get("labels"), "kind": result.report["kind"],
              "aggregate": result.report["aggregate"], "evaluated_threshold": result.report["threshold"]}
    data = sidecar_data(info, model_spec(info, config.scan.model), proposal, source)
    written = []
    for path, overwrite in targets:
        try:
            write_sidecar(path, data, overwrite)
        except FileExistsError as exc:
            raise DfscanError(f"{path} appeared during the evaluation and was not replaced") from exc
        except OSError as exc:
            raise DfscanError(f"cannot write {path}: {exc.strerror or exc}") from exc
        written.append(path)
    return written
