"""Output folders of `train` and `evaluate`: new, timestamped, never overwritten."""
from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..common.errors import ConfigError
from ..common.text import file_stamp


def make_output_dir(requested: str | os.PathLike | None, prefix: str) -> Path:
    """Create the run's folder: `requested` if new or empty, else `<cwd>/<prefix>-<time>[-n]`."""
    if requested is not None:
        path = Path(requested).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(f"--output {path} already exists and is not an empty folder; "
                              "choose a new one (dfscan never overwrites a run)")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = file_stamp()
    for n in range(1000):
        path = Path.cwd() / (f"{prefix}-{stamp}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"cannot find a free folder name for {prefix}-{stamp} in {Path.cwd()}")


@contextmanager
def output_dir(requested: str | os.PathLike | None, prefix: str) -> Iterator[Path]:
    """make_output_dir, and remove the folder again if the run fails before writing anything in it."""
    existed = requested is not None and Path(requested).expanduser().exists()
    path = make_output_dir(requested, prefix)
    try:
        yield path
    except BaseException:
        if not existed and not any(path.iterdir()):  # a failed start leaves no empty folder behind
            path.rmdir()
        raise


def jsonable(value: Any) -> Any:
    """Paths, tuples, numpy numbers and NaN made JSON-safe (NaN/inf become null)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalar
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: Any) -> Path:
    """Write atomically (a temporary file renamed), so a crash never leaves half a JSON."""
    from ..reports.writers import write_atomic

    write_atomic(path, json.dumps(jsonable(data), indent=2) + "\n", overwrite=True)
    return path
