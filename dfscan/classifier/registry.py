"""Which model to load: the registry in models/, the Hugging Face hub cache, or a local file.

`--model` takes a registry name (the first entry is the default), an
`hf://owner/repo[/file][@revision]` id, or a path to a `.keras` file. Hub files
are fetched with huggingface_hub into its standard cache (see hub); offline
(`--offline` or HF_HUB_OFFLINE=1) only that cache is read. Hub files are held to the
registry's SHA-256 or to the pin recorded at their first use (see pins). The standalone executable (see
build_exe.spec) prefers a model of its own when no --model is given: see frozen_models().
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..common.errors import ModelError, first_line
from ..common.text import printable
from . import pins
from .calibrated import calibrated_model, is_calibration_spec
from .hub import (DEFAULT_FILE, Fetched, HubRef, HubUnreachable, download, file_problem,  # noqa: F401 - API
                  hub_cache_dir, is_offline, repo_problem, revision_problem)
from .model_info import ModelInfo, describe_local_model, file_sha256, model_info

REGISTRY_ENV = "DFSCAN_REGISTRY"  # another registry file (a site's own list, or tests)
BESIDE_EXECUTABLE = "dfscan.keras"  # a model a user drops next to the standalone executable
BUNDLED_MODEL = Path("models") / "bundled.keras"  # DFSCAN_BUNDLE_MODEL, inside the bundle
_HEX64 = re.compile(r"[0-9a-f]{64}")


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
        return HubRef(src["hub"], src.get("file", DEFAULT_FILE), src.get("revision")) if "hub" in src else None

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
        return Path(__file__).resolve().parents[2] / "models" / "registry.json"


def load_registry(path: Path | None = None) -> list[Entry]:
    path = path or registry_file()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = [Entry(m["name"], m) for m in data["models"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read the model registry {path}: {printable(first_line(exc, 200))}") from exc
    for entry in entries:
        problem = _entry_problem(entry)
        if problem:
            raise ModelError(f"the model registry {path}: model {printable(str(entry.name))[:80]}: {problem}")
    return entries


def _entry_problem(entry: Entry) -> str | None:
    """What is wrong with a registry entry's own fields (model_info checks the model's)."""
    d = entry.data
    if not isinstance(entry.name, str) or not entry.name:
        return "name must be text"
    if not isinstance(d.get("aliases", []), list) or not all(isinstance(a, str) for a in d.get("aliases", [])):
        return "aliases must be a list of names"
    src = d.get("source")
    if not isinstance(src, dict):
        return "source must be an object"
    if "hub" in src:
        if repo_problem(src["hub"]):
            return f"source.hub: {repo_problem(src['hub'])}"
        if not (isinstance(src.get("file", ""), str) and str(src.get("file", "x")).endswith(".keras")):
            return "source.file must be the path of a .keras file in the repository"
        if revision_problem(src.get("revision")) or file_problem(src.get("file", DEFAULT_FILE)):
            return f"source: {revision_problem(src.get('revision')) or file_problem(src.get('file'))}"
    elif not isinstance(src.get("path"), str):
        return "source needs hub (owner/repo) or path"
    sha = src.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        return "source.sha256 must be 64 lowercase hex digits or null"
    return None


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


def resolve_model(spec: str | os.PathLike | None, offline: bool = False, accept: bool = False) -> ModelInfo:
    """Turn what the user passed to --model (or nothing) into a ModelInfo with verified bytes.

    `accept` (dfscan models fetch --refresh, after downloading again) records a hub file that
    differs from its pin instead of refusing it.
    """
    if spec is None:
        own = frozen_models()
        return describe_local_model(own[0]) if own else entry_model(default_entry(), offline, accept)
    text = str(spec)
    if is_calibration_spec(text):  # a threshold and band from `dfscan evaluate`, for the model it names
        return calibrated_model(Path(text).expanduser(), lambda base: resolve_model(base, offline, accept))
    if text.startswith("hf://"):
        ref = HubRef.parse(text)
        bare = re.fullmatch(r"hf://[^/]+/[^/@]+(@.*)?", text) is not None  # no file named: the registered one
        entry = next((e for e in load_registry() if e.hub and e.hub.repo == ref.repo
                      and (bare or e.hub.file == ref.file)), None)
        if entry is not None:  # the registry's metadata and network, at the revision asked for if any
            return entry_model(entry, offline, accept, revision=ref.revision)
        return hub_model(ref, offline, accept)
    if Path(text).expanduser().exists() or text.endswith(".keras") or os.sep in text:
        return describe_local_model(text)
    entry = find_entry(text)
    if entry is None:
        names = ", ".join(e.name for e in load_registry())
        raise ModelError(f"--model {printable(text)[:200]}: no such file, and no registry model of that name "
                         f"(known: {names})")
    return entry_model(entry, offline, accept)


def entry_model(entry: Entry, offline: bool = False, accept: bool = False, revision: str | None = None) -> ModelInfo:
    """A registry model: its file (from the hub cache or a path), checked against the registry or its pin."""
    ref = entry.hub
    if ref is not None and revision:
        ref = replace(ref, revision=revision)
    if ref is None:
        path = Path(entry.source.get("path", "")).expanduser()
        if not os.path.lexists(path):
            raise ModelError(f"registry model {entry.name}: file not found: {path}")
        from .safe_load import regular_file

        regular_file(path, f"registry model {entry.name}'s file")  # a device (/dev/zero), a pipe, a folder: said so
        info = model_info(path, entry.data, default_name=entry.name, source=str(path))
        return _checked(info, entry)
    got = download(ref, offline, hint=entry.name)
    info = model_info(got.path, entry.data, default_name=entry.name, source=str(got.ref), revision=got.commit)
    info = _with_warnings(info, got.notes)
    if entry.sha256 is not None and ref.revision == (entry.hub.revision if entry.hub else None):
        return _checked(info, entry)  # the recorded hash is of the registered revision
    return _pinned(info, ref, got, entry.name, accept)


def _checked(info: ModelInfo, entry: Entry) -> ModelInfo:
    """A file the registry records a SHA-256 for must have it."""
    if entry.sha256 is not None and info.sha256 != entry.sha256:
        raise ModelError(
            f"{info.path} has SHA-256 {info.sha256}, but the registry records {entry.sha256} for {entry.name}: "
            f"the file is corrupt or not the published one. Run `dfscan models fetch {entry.name} --refresh` "
            "to download it again."
        )
    return info


def pin_key(ref: HubRef, used: HubRef) -> str:
    """What a pin is recorded under: the file used, at the revision asked for (main when none)."""
    return f"hf://{used.repo}/{used.file}@{ref.revision or 'main'}"


def _pinned(info: ModelInfo, ref: HubRef, got: Fetched, name: str, accept: bool) -> ModelInfo:
    """Trust on first use: record the file's SHA-256 and commit the first time, hold it to them later."""
    key = pin_key(ref, got.ref)
    pin = pins.get(key)
    if pin is not None and pin.sha256 == info.sha256:
        return info
    if pin is not None and not accept:
        if pin.commit and info.revision and pin.commit != info.revision:
            why = (f"the hub now serves commit {info.revision} instead of {pin.commit}, with other bytes")
        else:
            why = f"the file changed after its first use (commit {info.revision or '?'}): corrupt or altered"
        raise ModelError(
            f"{key} is not the file dfscan used before: {why}. Recorded on {pin.recorded or 'first use'}: "
            f"SHA-256 {pin.sha256}; now: {info.sha256} ({info.path}). If you trust the new file, accept it "
            f"with `dfscan models fetch {name} --refresh` (downloads it again and records the new hash).")
    where = pins.record(key, info.sha256, info.revision)
    if pin is not None:
        note = (f"{key}: accepted the new file, SHA-256 {info.sha256} (commit {info.revision or '?'}), in place of "
                f"{pin.sha256}; recorded in {where}")
    else:
        # Trust on first use is the expected path for every new user: information, not an alarm.
        return replace(info, notices=info.notices + (
            f"pinned the model on first use: {key}, SHA-256 {info.sha256} (commit {info.revision or '?'}), "
            f"recorded in {where}; later scans check the file against it",))
    return _with_warnings(info, (note,))


def _with_warnings(info: ModelInfo, notes) -> ModelInfo:
    return replace(info, warnings=info.warnings + tuple(notes)) if notes else info


def hub_model(ref: HubRef, offline: bool = False, accept: bool = False) -> ModelInfo:
    """A hub file outside the registry; its metadata comes from `<stem>.json` in the same repo, if any."""
    got = download(ref, offline, hint=str(ref))
    meta = None
    notes = got.notes
    sidecar = Path(got.ref.file).with_suffix(".json").as_posix()
    try:
        meta_got = download(HubRef(ref.repo, sidecar, got.commit), offline, hint=str(ref), quiet=True,
                            fallback=False)
    except HubUnreachable:  # not "no metadata": whether the repository publishes one is unknown
        meta_got = None
        notes += (f"the hub could not be reached to look for hf://{ref.repo}/{sidecar} (the model's metadata); "
                  "the reference model's preprocessing is assumed for this scan",)
    except ModelError:
        meta_got = None  # no metadata published (or, offline, none cached): the reference profile, with a warning
    if meta_got is not None:
        from .model_info import read_metadata

        meta = read_metadata(meta_got.path)
    info = model_info(got.path, meta, default_name=f"hf://{got.ref.repo}/{got.ref.file}", source=str(got.ref),
                      revision=got.commit)
    return _pinned(_with_warnings(info, notes), ref, got, str(ref), accept)


def verify(entry: Entry, offline: bool = True) -> tuple[str, Path | None, str | None]:
    """('ok' | 'mismatch' | 'unpinned' | 'missing', cached path, its SHA-256) without downloading.

    'ok': matches the registry's SHA-256, or the pin recorded at first use; 'unpinned': cached but
    never used by a scan (the first use records it).
    """
    try:
        if entry.hub:
            got = download(entry.hub, offline=offline, hint=entry.name, quiet=True)
            path = got.path
        else:
            got, path = None, Path(entry.source.get("path", ""))
    except ModelError:
        return "missing", None, None
    if not path.is_file():
        return "missing", None, None
    digest = file_sha256(path)
    if entry.sha256 is not None:
        return ("ok" if digest == entry.sha256 else "mismatch"), path, digest
    if got is None:
        return "unpinned", path, digest
    pin = pins.get(pin_key(entry.hub, got.ref))
    if pin is None:
        return "unpinned", path, digest
    return ("ok" if pin.sha256 == digest else "mismatch"), path, digest
