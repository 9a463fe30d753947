"""Which model to load: the registry in models/, the Hugging Face hub cache, or a local file.

`--model` takes a registry name (the first entry is the default), an
`hf://owner/repo[/file][@revision]` id, or a path to a `.keras` file. Hub files
are fetched with huggingface_hub into its standard cache; offline (`--offline`
or HF_HUB_OFFLINE=1) only that cache is read. The standalone executable (see
build_exe.spec) prefers a model of its own when no --model is given: see frozen_models().
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ModelError, first_line
from .model import ModelInfo, describe_local_model, file_sha256, model_info

REGISTRY_ENV = "DFSCAN_REGISTRY"  # another registry file (a site's own list, or tests)
BESIDE_EXECUTABLE = "dfscan.keras"  # a model a user drops next to the standalone executable
BUNDLED_MODEL = Path("models") / "bundled.keras"  # DFSCAN_BUNDLE_MODEL, inside the bundle
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class HubRef:
    """A file in a hub repository at a revision (branch, tag or commit)."""

    repo: str
    file: str = "best_model.keras"
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> "HubRef":
        m = re.fullmatch(r"hf://([\w.-]+/[\w.-]+)(/[^@]+)?(@[\w./-]+)?", text)
        if not m:
            raise ModelError(f"cannot read hub id {text!r}: use hf://owner/repo[/file.keras][@revision]")
        return cls(m.group(1), (m.group(2) or "/best_model.keras")[1:], (m.group(3) or "@")[1:] or None)

    def __str__(self) -> str:
        return f"hf://{self.repo}/{self.file}" + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True)
class Entry:
    """One model of the registry."""

    name: str
    data: dict[str, Any] = field(repr=False)

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(self.data.get("aliases", ()))

    @property
    def source(self) -> dict[str, Any]:
        return self.data.get("source", {})

    @property
    def hub(self) -> HubRef | None:
        src = self.source
        return HubRef(src["hub"], src.get("file", "best_model.keras"), src.get("revision")) if "hub" in src else None

    @property
    def sha256(self) -> str | None:
        return self.source.get("sha256")


def registry_file() -> Path:
    """models/registry.json, found through the package so that installs and frozen builds see it."""
    override = os.environ.get(REGISTRY_ENV)
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:  # a PyInstaller build: build_exe.spec puts it where an install has it
        return Path(bundle) / "dfscan" / "models" / "registry.json"
    try:  # installed (setup.cfg maps models/ to dfscan.models)
        return Path(str(resources.files("dfscan.models").joinpath("registry.json")))
    except ModuleNotFoundError:  # run from a source checkout without installing
        return Path(__file__).resolve().parent.parent / "models" / "registry.json"


def load_registry(path: Path | None = None) -> list[Entry]:
    path = path or registry_file()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Entry(m["name"], m) for m in data["models"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read the model registry {path}: {exc}") from exc


def find_entry(name: str, entries: list[Entry] | None = None) -> Entry | None:
    for entry in entries if entries is not None else load_registry():
        if name == entry.name or name in entry.aliases:
            return entry
    return None


def default_entry() -> Entry:
    entries = load_registry()
    if not entries:
        raise ModelError(f"the model registry {registry_file()} lists no model")
    return entries[0]


def is_offline(offline: bool = False) -> bool:
    return offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def frozen_models() -> list[Path]:
    """The standalone executable's own models, preferred in this order when no --model is given.

    `dfscan.keras` beside the executable comes first, so a user can swap models without a
    rebuild; then the model bundled at build time. Each may have its sidecar JSON beside it.
    Outside a PyInstaller build there are none.
    """
    if not getattr(sys, "frozen", False):
        return []
    beside = Path(sys.executable).resolve().parent / BESIDE_EXECUTABLE
    bundled = Path(getattr(sys, "_MEIPASS", beside.parent)) / BUNDLED_MODEL
    return [p for p in (beside, bundled) if p.is_file()]


def resolve_model(spec: str | os.PathLike | None, offline: bool = False) -> ModelInfo:
    """Turn what the user passed to --model (or nothing) into a ModelInfo with verified bytes."""
    if spec is None:
        own = frozen_models()
        return describe_local_model(own[0]) if own else entry_model(default_entry(), offline)
    text = str(spec)
    if text.startswith("hf://"):
        ref = HubRef.parse(text)
        entry = next((e for e in load_registry() if e.hub and (e.hub.repo, e.hub.file) == (ref.repo, ref.file)), None)
        if entry is not None and ref.revision is None:
            return entry_model(entry, offline)
        return hub_model(ref, offline)
    if Path(text).expanduser().exists() or text.endswith(".keras") or os.sep in text:
        return describe_local_model(text)
    entry = find_entry(text)
    if entry is None:
        names = ", ".join(e.name for e in load_registry())
        raise ModelError(f"--model {text}: no such file, and no registry model of that name (known: {names})")
    return entry_model(entry, offline)


def entry_model(entry: Entry, offline: bool = False) -> ModelInfo:
    """A registry model: its file (from the hub cache or a path) checked against the recorded SHA-256."""
    ref = entry.hub
    if ref is None:
        path = Path(entry.source.get("path", "")).expanduser()
        if not path.is_file():
            raise ModelError(f"registry model {entry.name}: file not found: {path}")
        info = model_info(path, entry.data, default_name=entry.name, source=str(path))
    else:
        path, commit = download(ref, offline, hint=entry.name)
        info = model_info(path, entry.data, default_name=entry.name, source=str(ref), revision=commit)
    return _checked(info, entry)


def _checked(info: ModelInfo, entry: Entry) -> ModelInfo:
    if entry.sha256 is None:
        note = (f"registry model {entry.name} has no recorded SHA-256; this file's is {info.sha256}"
                + (f" (revision {info.revision})" if info.revision else "")
                + ". Record both in models/registry.json to pin it.")
        return _with_warning(info, note)
    if info.sha256 != entry.sha256:
        raise ModelError(
            f"{info.path} has SHA-256 {info.sha256}, but the registry records {entry.sha256} for {entry.name}: "
            f"the file is corrupt or not the published one. Delete it and run `dfscan models fetch {entry.name}`."
        )
    return info


def _with_warning(info: ModelInfo, note: str) -> ModelInfo:
    return replace(info, warnings=info.warnings + (note,))


def hub_model(ref: HubRef, offline: bool = False) -> ModelInfo:
    """A hub file outside the registry; its metadata comes from `<stem>.json` in the same repo, if any."""
    path, commit = download(ref, offline, hint=str(ref))
    meta = None
    sidecar = Path(ref.file).with_suffix(".json").as_posix()
    try:
        meta_path, _ = download(HubRef(ref.repo, sidecar, commit), offline, hint=str(ref))
        meta = json.loads(Path(meta_path).read_text(encoding="utf-8"))
    except (ModelError, ValueError, OSError):
        pass  # no metadata published: the reference profile applies, with a warning
    return model_info(path, meta, default_name=f"hf://{ref.repo}/{ref.file}", source=str(ref), revision=commit)


def hub_cache_dir() -> str | None:
    """HF_HUB_CACHE read now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def download(ref: HubRef, offline: bool = False, hint: str = "", refresh: bool = False) -> tuple[Path, str | None]:
    """The local path of a hub file (downloaded unless offline) and the commit it came from."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub import errors as hf_errors
    except ImportError as exc:
        raise ModelError("huggingface_hub is not installed: pip install huggingface_hub, or pass --model FILE") from exc
    offline = is_offline(offline)
    get = partial(hf_hub_download, ref.repo, ref.file, revision=ref.revision, cache_dir=hub_cache_dir())
    try:
        # The cache first: a cached model is used without asking the network (the bytes a scan
        # uses never change under the user; `dfscan models fetch --refresh` asks for new ones).
        local = get(local_files_only=True) if not refresh else None
    except hf_errors.LocalEntryNotFoundError as exc:
        if offline:
            raise ModelError(_not_cached(ref, hint, offline)) from exc
        local = None
    try:
        local = local or get()
    except hf_errors.LocalEntryNotFoundError as exc:  # what huggingface_hub raises when the network fails
        raise ModelError(f"cannot download {ref}. " + _not_cached(ref, hint, False)) from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError) as exc:
        raise ModelError(f"{ref} does not exist on the hub (or needs a token): {first_line(exc)}") from exc
    except (OSError, hf_errors.HfHubHTTPError) as exc:  # connection refused, DNS, proxy...
        raise ModelError(f"cannot download {ref}: {first_line(exc)}. " + _not_cached(ref, hint, True)) from exc
    path = Path(local)
    commit = path.parent.name if path.parent.parent.name == "snapshots" else ref.revision
    return path, commit


def _not_cached(ref: HubRef, hint: str, offline: bool) -> str:
    where = hub_cache_dir() or "the default hub cache (~/.cache/huggingface/hub)"
    why = "dfscan is offline and " if offline else ""
    return (f"{why}{ref} is not in {where}. On a connected machine run `dfscan models fetch {hint or ref}` "
            "and copy that cache folder here (or point HF_HUB_CACHE at it), or pass the .keras file with --model.")


def verify(entry: Entry, offline: bool = True) -> tuple[str, Path | None, str | None]:
    """('ok' | 'mismatch' | 'unrecorded' | 'missing', cached path, its SHA-256) without downloading."""
    try:
        path = download(entry.hub, offline=offline)[0] if entry.hub else Path(entry.source.get("path", ""))
    except ModelError:
        return "missing", None, None
    if not path.is_file():
        return "missing", None, None
    digest = file_sha256(path)
    if entry.sha256 is None:
        return "unrecorded", path, digest
    return ("ok" if digest == entry.sha256 else "mismatch"), path, digest
