"""The Hugging Face hub: hub file ids, the hub cache, and downloads that fail fast and say why.

A cached file is used without touching the network. Otherwise the hub is asked once, with a
short timeout (DFSCAN_HUB_TIMEOUT, 6 s), so that an unreachable hub is said within seconds; a
registered file that moved is found in the repository's file list. Which file to trust, and
its metadata, is the registry's business (see registry).
"""
from __future__ import annotations

import errno
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.errors import ModelError, first_line
from ..common.text import printable

_TRUE = {"1", "true", "yes", "on"}
DEFAULT_FILE = "best_model.keras"
TIMEOUT_ENV = "DFSCAN_HUB_TIMEOUT"
HUB_TIMEOUT_S = 6.0  # one try, this long: an unreachable hub is said within ~10 s, not after five retries
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}  # our disk, not the hub
fetch_log = logging.getLogger("dfscan.fetch")  # the CLI shows its INFO lines: a download is never silent


@dataclass(frozen=True)
class HubRef:
    """A file in a hub repository at a revision (branch, tag or commit)."""

    repo: str
    file: str = DEFAULT_FILE  # hf://owner/repo alone; a repo without it falls back to its only .keras file
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> "HubRef":
        m = re.fullmatch(r"hf://([\w.-]+/[\w.-]+)(/[^@]+)?(@[\w./-]+)?", text)
        if not m:
            raise ModelError(f"cannot read hub id {text!r}: use hf://owner/repo[/file.keras][@revision]")
        return cls(m.group(1), (m.group(2) or "/" + DEFAULT_FILE)[1:], (m.group(3) or "@")[1:] or None)

    def __post_init__(self):
        problem = repo_problem(self.repo) or file_problem(self.file) or revision_problem(self.revision)
        if problem:
            raise ModelError(f"hub id hf://{printable(str(self.repo))[:100]}: {problem}")

    def __str__(self) -> str:
        return f"hf://{self.repo}/{self.file}" + (f"@{self.revision}" if self.revision else "")


# The hub's own grammar (huggingface_hub's validate_repo_id; git's check-ref-format for revisions). Checked
# before anything touches the cache: a `..` would otherwise make `refs/<revision>` a path out of it.
_REPO_PART = r"[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}", re.ASCII)
_REF_PART = re.compile(r"[\w-][\w.-]*", re.ASCII)


def repo_problem(repo: object) -> str | None:
    """Why `repo` is not a hub repository id (owner/name), or None."""
    if (not isinstance(repo, str) or len(repo) > 96 or not _REPO_ID.fullmatch(repo) or "--" in repo
            or ".." in repo or repo.endswith(".git")):
        return ("the repository must be owner/repo: letters, digits, '-', '_' and '.', at most 96 characters, "
                "without '--' or '..', not starting or ending with '-' or '.'")
    return None


def revision_problem(revision: object) -> str | None:
    """Why `revision` is not a branch, tag or commit name the hub accepts (git's ref rules), or None."""
    if revision is None:
        return None
    parts = revision.split("/") if isinstance(revision, str) and len(revision) <= 255 else [""]
    if not all(_REF_PART.fullmatch(p) and not p.endswith((".", ".lock")) for p in parts) or ".." in revision:
        return ("the revision must be a branch, tag or commit: parts of letters, digits, '-', '_' and '.' "
                "separated by '/', none starting with '.', without '..'")
    return None


def file_problem(file: object) -> str | None:
    """Why `file` is not a path inside a repository, or None."""
    parts = file.split("/") if isinstance(file, str) and len(file) <= 1000 else [""]
    if any(p in ("", ".", "..") or not p.isprintable() or "\\" in p for p in parts):
        return "the file must be a path inside the repository (no empty, '.' or '..' parts, no '\\')"
    return None


def is_offline(offline: bool = False) -> bool:
    return offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE



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
    from_cache: bool = False  # taken from the hub cache: the hub was not contacted


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
        fetch_log.info("downloading the model%s: %s from %s into %s…", f" ({_size(size)})" if size else "",
                       used, hub_endpoint(), _cache_shown())
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


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{max(1, round(n / 1e3))} kB"


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
        return Fetched(Path(local), _commit_of(Path(local)) or ref.revision, ref, from_cache=True)
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
    return Fetched(found[0], snapshot.name, other, (note,), from_cache=True)


def _cached_snapshot(ref: HubRef) -> Path | None:
    """The cached snapshot folder of the repo at ref's revision, if any."""
    root = Path(hub_cache_dir() or Path.home() / ".cache" / "huggingface" / "hub").expanduser()
    storage = root / f"models--{ref.repo.replace('/', '--')}"
    revision = ref.revision or "main"
    commit = revision if re.fullmatch(r"[0-9a-f]{40}", revision) else None
    if commit is None:
        ref_file = storage / "refs" / revision
        if not ref_file.is_file():  # a FIFO would hang the open, /dev/zero never end
            return None
        try:
            with open(ref_file, "rb") as fh:
                commit = fh.read(64).decode("ascii", "replace").strip()  # a commit's length is enough
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
    # Said first in plain words, for someone who has never heard of the hub; the technical options after.
    url = f"{hub_endpoint()}/{ref.repo}/resolve/{ref.revision or 'main'}/{ref.file}"
    return (f"dfscan needs its model file ({ref.file.rsplit('/', 1)[-1]}), which it downloads once, and this "
            f"machine cannot download it: {head}. What to do: on a computer with internet access, open {url} to "
            "download the model file, copy the file to this machine, and scan with `--model FILE` (the path of "
            "that file). If your network needs a proxy, set HTTPS_PROXY (e.g. HTTPS_PROXY=http://proxy:8080); "
            "if your organisation runs a copy of the hub, set HF_ENDPOINT to its address; or run "
            f"`dfscan models fetch {hint or ref}` on a connected machine, copy its hub cache folder "
            f"({_cache_shown()}) here (or point HF_HUB_CACHE at the copy) and scan with --offline.")


def _not_cached(ref: HubRef, hint: str, offline: bool, for_fetch: bool = False) -> str:
    why = "dfscan is offline (--offline or HF_HUB_OFFLINE=1) and " if offline else ""
    fix = ("run it without --offline / HF_HUB_OFFLINE on a machine that can reach the hub, "
           if for_fetch else f"on a connected machine run `dfscan models fetch {hint or ref}` ")
    return (f"{why}{ref} is not in the hub cache ({_cache_shown()}). To get it: {fix}and copy that cache folder "
            "here (or point HF_HUB_CACHE at it), or pass the .keras file with --model.")


