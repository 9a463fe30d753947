"""Which model to load: the registry in models/, the Hugging Face hub cache, or a local file.

`--model` takes a registry name (the first entry is the default), an
`hf://owner/repo[/file][@revision]` id, or a path to a `.keras` file. Hub files
are fetched with huggingface_hub into its standard cache; offline (`--offline`
or HF_HUB_OFFLINE=1) only that cache is read. The standalone executable (see
build_exe.spec) prefers a model of its own when no --model is given: see frozen_models().
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from . import pins
from .errors import ModelError, first_line
from .model import ModelInfo, describe_local_model, file_sha256, model_info, printable

REGISTRY_ENV = "DFSCAN_REGISTRY"  # another registry file (a site's own list, or tests)
BESIDE_EXECUTABLE = "dfscan.keras"  # a model a user drops next to the standalone executable
BUNDLED_MODEL = Path("models") / "bundled.keras"  # DFSCAN_BUNDLE_MODEL, inside the bundle
_TRUE = {"1", "true", "yes", "on"}
DEFAULT_FILE = "best_model.keras"
TIMEOUT_ENV = "DFSCAN_HUB_TIMEOUT"
HUB_TIMEOUT_S = 6.0  # one try, this long: an unreachable hub is said within ~10 s, not after five retries
_REPO = re.compile(r"[\w.-]+/[\w.-]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}  # our disk, not the hub
fetch_log = logging.getLogger("dfscan.fetch")  # the CLI shows its INFO lines: a download is never silent


@dataclass(frozen=True)
class HubRef:
    """A file in a hub repository at a revision (branch, tag or commit)."""

    repo: str
    file: str = "best_model.keras"  # hf://owner/repo alone; a repo without it falls back to its only .keras file
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
        return Path(__file__).resolve().parent.parent / "models" / "registry.json"


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
        if not (isinstance(src["hub"], str) and _REPO.fullmatch(src["hub"])):
            return "source.hub must be owner/repo"
        if not (isinstance(src.get("file", ""), str) and str(src.get("file", "x")).endswith(".keras")):
            return "source.file must be the path of a .keras file in the repository"
        if src.get("revision") is not None and not (isinstance(src["revision"], str)
                                                     and re.fullmatch(r"[\w./-]+", src["revision"])):
            return "source.revision must be a branch, tag or commit"
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


def resolve_model(spec: str | os.PathLike | None, offline: bool = False, accept: bool = False) -> ModelInfo:
    """Turn what the user passed to --model (or nothing) into a ModelInfo with verified bytes.

    `accept` (dfscan models fetch --refresh, after downloading again) records a hub file that
    differs from its pin instead of refusing it.
    """
    if spec is None:
        own = frozen_models()
        return describe_local_model(own[0]) if own else entry_model(default_entry(), offline, accept)
    text = str(spec)
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
        if not path.is_file():
            raise ModelError(f"registry model {entry.name}: file not found: {path}")
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


def _pinned(info: ModelInfo, ref: HubRef, got: "Fetched", name: str, accept: bool) -> ModelInfo:
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
        note = (f"first use of {key}: the registry records no SHA-256 for it, so dfscan recorded this file's, "
                f"{info.sha256} (commit {info.revision or '?'}), in {where}; later scans refuse any other file "
                "(accept a new one with `dfscan models fetch --refresh`)")
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
        from .model import read_metadata

        meta = read_metadata(meta_got.path)
    info = model_info(got.path, meta, default_name=f"hf://{got.ref.repo}/{got.ref.file}", source=str(got.ref),
                      revision=got.commit)
    return _pinned(_with_warnings(info, notes), ref, got, str(ref), accept)


def hub_cache_dir() -> str | None:
    """HF_HUB_CACHE read now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _cache_shown() -> str:
    return hub_cache_dir() or "~/.cache/huggingface/hub"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _timeout() -> float:
    try:
        return max(0.5, float(os.environ.get(TIMEOUT_ENV, HUB_TIMEOUT_S)))
    except ValueError:
        return HUB_TIMEOUT_S


@dataclass(frozen=True)
class Fetched:
    """A hub file on disk: where, from which commit, which file (after a fallback), and what to tell."""

    path: Path
    commit: str | None
    ref: HubRef
    notes: tuple[str, ...] = ()


class HubUnreachable(ModelError):
    """The hub did not answer (no network, DNS, proxy, firewall, or a hub outage)."""


def _hf():
    # Telemetry off: besides what it sends, huggingface_hub 2.x asks the hub for an "agent harness"
    # list on its first request (3 s more against an unreachable hub). It reads this at import.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import huggingface_hub
        from huggingface_hub import constants, errors
    except ImportError as exc:
        raise ModelError("huggingface_hub is not installed: pip install huggingface_hub, or pass --model FILE") from exc
    if os.environ["HF_HUB_DISABLE_TELEMETRY"].strip().lower() in _TRUE:
        constants.HF_HUB_DISABLE_TELEMETRY = True  # in case it was imported before
    return huggingface_hub, errors


def download(ref: HubRef, offline: bool = False, hint: str = "", refresh: bool = False, *,
             for_fetch: bool = False, quiet: bool = False, fallback: bool = True) -> Fetched:
    """A hub file: from the cache when it is there (no network), else downloaded.

    The hub is first asked once, with a short timeout (_locate), so that an unreachable hub is
    said within seconds. A registered file missing from its repository is replaced by the
    repository's only .keras file, with a note; otherwise the error lists what the repository
    holds. Without the hub (offline, or unreachable) the only .keras file cached from the
    repository stands in for a registered file that is not cached, with a note.
    """
    hf, errors = _hf()
    offline = is_offline(offline)
    if refresh and offline:
        raise ModelError("--refresh asks the hub again, which needs the network (drop --offline / HF_HUB_OFFLINE)")
    if not refresh:
        cached = _from_cache(ref)
        if cached is not None:
            return cached
        if offline:
            stand_in = _cached_stand_in(ref, "dfscan is offline") if fallback else None
            if stand_in is None:
                raise ModelError(_not_cached(ref, hint, offline=True, for_fetch=for_fetch))
            return stand_in
    try:
        used, notes, size = _locate(ref, hint, for_fetch, fallback)
    except HubUnreachable:
        stand_in = _cached_stand_in(ref, "the hub cannot be reached") if fallback and not refresh else None
        if stand_in is None:
            raise
        return stand_in
    if not quiet:
        fetch_log.info("downloading %s%s from %s into %s", used,
                       f" ({size / 1e6:.1f} MB)" if size else "", hub_endpoint(), _cache_shown())
    try:
        # huggingface_hub asks the hub again here (etag_timeout); the download itself has
        # HF_HUB_DOWNLOAD_TIMEOUT between bytes. If the hub stops answering between _locate's
        # answer and this request, huggingface_hub retries that request for up to a minute or so.
        local = hf.hf_hub_download(used.repo, used.file, revision=used.revision, cache_dir=hub_cache_dir(),
                                   etag_timeout=_timeout(), force_download=refresh)
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.RemoteEntryNotFoundError) as exc:
        raise ModelError(f"{used} does not exist on the hub (or needs a token): {first_line(exc)}") from exc
    except OSError as exc:
        if exc.errno not in _LOCAL_ERRNOS:  # huggingface_hub's HTTP errors are OSErrors without an errno
            raise HubUnreachable(_unreachable(used, hint, exc, for_fetch)) from exc
        raise ModelError(f"cannot save {used} in the hub cache {_cache_shown()}: {exc.strerror or exc}"
                         + (f" ({exc.filename})" if exc.filename else "")
                         + ". Free some space, or point HF_HUB_CACHE at a folder with room that you can write") from exc
    except Exception as exc:  # noqa: BLE001 - httpx's connection resets and timeouts, proxies, 5xx
        raise HubUnreachable(_unreachable(used, hint, exc, for_fetch)) from exc
    path = Path(local)
    return Fetched(path, _commit_of(path) or used.revision, used, notes)


def _commit_of(path: Path) -> str | None:
    """The commit folder a cached file sits in (.../snapshots/<commit>/sub/file)."""
    parts = path.parts
    if "snapshots" in parts:
        i = len(parts) - 1 - parts[::-1].index("snapshots")
        if i + 1 < len(parts) - 1:
            return parts[i + 1]
    return None


def _from_cache(ref: HubRef) -> Fetched | None:
    """The cached copy of a hub file, without touching the network; None when it is not there."""
    hf, errors = _hf()
    try:
        local = hf.hf_hub_download(ref.repo, ref.file, revision=ref.revision, cache_dir=hub_cache_dir(),
                                   local_files_only=True)
        return Fetched(Path(local), _commit_of(Path(local)) or ref.revision, ref)
    except errors.LocalEntryNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the hub cache {_cache_shown()}: {first_line(exc)}") from exc


def _cached_stand_in(ref: HubRef, why: str) -> Fetched | None:
    """Without the hub: the only .keras file cached from ref's repository at its revision, if there is one."""
    snapshot = _cached_snapshot(ref)
    if snapshot is None:
        return None
    found = sorted(p for p in snapshot.rglob("*.keras") if p.is_file())
    if len(found) != 1:
        return None
    other = HubRef(ref.repo, found[0].relative_to(snapshot).as_posix(), ref.revision)
    note = (f"{ref} is not in the hub cache and {why}; using {other.file}, the only .keras file cached from "
            f"hf://{ref.repo} (the registry entry should name the file the repository holds)")
    return Fetched(found[0], snapshot.name, other, (note,))


def _cached_snapshot(ref: HubRef) -> Path | None:
    """The cached snapshot folder of the repo at ref's revision, if any."""
    root = Path(hub_cache_dir() or Path.home() / ".cache" / "huggingface" / "hub").expanduser()
    storage = root / f"models--{ref.repo.replace('/', '--')}"
    revision = ref.revision or "main"
    commit = revision if re.fullmatch(r"[0-9a-f]{40}", revision) else None
    if commit is None:
        try:
            commit = (storage / "refs" / revision).read_text().strip()
        except OSError:
            return None
    snap = storage / "snapshots" / commit
    return snap if re.fullmatch(r"[0-9a-f]{40}", commit) and snap.is_dir() else None


def _locate(ref: HubRef, hint: str, for_fetch: bool, fallback: bool) -> tuple[HubRef, tuple[str, ...], int | None]:
    """Ask the hub for the file (one HEAD, short timeout): the ref to download, notes, its size."""
    hf, errors = _hf()
    url = hf.hf_hub_url(ref.repo, ref.file, revision=ref.revision)
    try:
        meta = hf.get_hf_file_metadata(url, timeout=_timeout())
        return ref, (), meta.size
    except errors.RemoteEntryNotFoundError as exc:
        if not fallback:
            raise ModelError(f"{ref} does not exist on the hub") from exc
        return _fallback(ref, hint, for_fetch)
    except errors.RevisionNotFoundError as exc:
        raise ModelError(f"hf://{ref.repo} has no revision {ref.revision!r} on the hub") from exc
    except errors.RepositoryNotFoundError as exc:
        raise ModelError(f"the hub has no repository {ref.repo} (or it is private or gated and needs a token: "
                         "`hf auth login`)") from exc
    except Exception as exc:  # noqa: BLE001 - httpx's connect/timeout errors, proxies, 5xx, offline mode
        raise HubUnreachable(_unreachable(ref, hint, exc, for_fetch)) from exc


def _fallback(ref: HubRef, hint: str, for_fetch: bool) -> tuple[HubRef, tuple[str, ...], int | None]:
    """The registered file is gone: the repository's only .keras file, or an error listing what it holds."""
    try:
        files = _repo_files(ref)
    except TimeoutError as exc:
        raise HubUnreachable(_unreachable(ref, hint, exc, for_fetch)) from exc
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{ref} does not exist on the hub, and its file list cannot be read: "
                         f"{first_line(exc, 200)}") from exc
    keras_files = [f for f in files if f.endswith(".keras")]
    if len(keras_files) != 1:
        shown = ", ".join(printable(f) for f in files[:30]) + (f" and {len(files) - 30} more" if len(files) > 30 else "")
        raise ModelError(f"{ref} does not exist on the hub; the repository holds: {shown or 'nothing'}"
                         + (f". Name one of its .keras files: hf://{ref.repo}/FILE" if keras_files else ""))
    other = HubRef(ref.repo, keras_files[0], ref.revision)
    note = (f"hf://{ref.repo} has no {ref.file}; using {other.file}, the only .keras file it holds "
            "(the registry entry should name it)")
    return other, (note,), None


def _repo_files(ref: HubRef) -> list[str]:
    """The repository's file list, or TimeoutError after the hub timeout.

    huggingface_hub sets no timeout on listings (and retries them), so a hub that answered the
    HEAD and then stalls would hang the scan: the listing runs in a daemon thread, left behind
    if it does not finish in time.
    """
    hf, _ = _hf()
    done: dict[str, Any] = {}

    def listing() -> None:
        try:
            done["files"] = hf.HfApi(endpoint=hub_endpoint()).list_repo_files(ref.repo, revision=ref.revision)
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            done["error"] = exc

    worker = threading.Thread(target=listing, name="dfscan-hub-listing", daemon=True)
    worker.start()
    worker.join(_timeout())
    if worker.is_alive():
        raise TimeoutError(f"the hub answered, then did not list hf://{ref.repo}'s files within {_timeout():g} s")
    if "error" in done:
        raise done["error"]
    return done["files"]


def _unreachable(ref: HubRef, hint: str, exc: Exception, for_fetch: bool) -> str:
    reason = printable(first_line(exc, 160))
    head = f"cannot reach the Hugging Face hub at {hub_endpoint()} ({type(exc).__name__}: {reason})"
    if for_fetch:
        return (f"{head}. Check the network connection, a proxy (HTTPS_PROXY) or HF_ENDPOINT. Without the network "
                f"here: download the model on a machine that can reach the hub and copy its hub cache folder "
                f"({_cache_shown()}) to this machine (or point HF_HUB_CACHE at the copy).")
    return (f"{head}, and {ref} is not in the hub cache ({_cache_shown()}). To scan anyway: pass a model file with "
            f"--model FILE; or run `dfscan models fetch {hint or ref}` on a machine that can reach the hub, copy "
            "its hub cache folder here (or point HF_HUB_CACHE at the copy) and scan with --offline.")


def _not_cached(ref: HubRef, hint: str, offline: bool, for_fetch: bool = False) -> str:
    why = "dfscan is offline (--offline or HF_HUB_OFFLINE=1) and " if offline else ""
    fix = ("run it without --offline / HF_HUB_OFFLINE on a machine that can reach the hub, "
           if for_fetch else f"on a connected machine run `dfscan models fetch {hint or ref}` ")
    return (f"{why}{ref} is not in the hub cache ({_cache_shown()}). To get it: {fix}and copy that cache folder "
            "here (or point HF_HUB_CACHE at it), or pass the .keras file with --model.")


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
