"""Links: a video a user was handed as a URL, fetched with yt-dlp into a private media folder and kept there,
because the fetched file is the evidence; then scanned like any file.

Only http and https links are fetched, and never followed to another scheme (yt-dlp refuses file:// unless
told otherwise, which dfscan never does; a final URL off http(s) is refused here too). No cookies and no
login unless the user hands a cookies file. A link that cannot be fetched becomes one ERROR row with
yt-dlp's reason; the scan goes on. yt-dlp is imported only when a link is fetched.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

from ..common.errors import ConfigError
from ..results import Found

log = logging.getLogger(__name__)

WEB_SCHEMES = ("http", "https")
DEFAULT_MAX_DOWNLOAD = 2 * 1024 ** 3  # bytes: longer than any clip a journalist is handed, smaller than a film
DEFAULT_FETCH_TIMEOUT = 60.0  # seconds without a byte before a link is given up
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
Progress = Callable[[str, int, "int | None"], None]  # (url, bytes so far, expected bytes or None)


def is_link(item) -> bool:
    """Is this command-line item a URL (any scheme) rather than a path? Paths never hold '://'."""
    return isinstance(item, str) and bool(_SCHEME.match(item))


@dataclass(frozen=True)
class LinkConfig:
    """How links are fetched."""

    media_dir: str | None = None  # None: <dfscan's data folder>/media
    max_bytes: int = DEFAULT_MAX_DOWNLOAD
    timeout_s: float = DEFAULT_FETCH_TIMEOUT
    cookies: str | None = None  # a Netscape cookies file; None: no cookies, no login

    def __post_init__(self):
        if self.max_bytes < 1:
            raise ConfigError("max_download must be at least 1 byte")
        if not self.timeout_s > 0:
            raise ConfigError("fetch_timeout must be more than 0 seconds")

    def folder(self) -> Path:
        from ..classifier.pins import data_dir
        from ..common.dirs import private_dir

        return private_dir(Path(self.media_dir).expanduser() if self.media_dir else data_dir() / "media")


@dataclass(frozen=True)
class Origin:
    """One fetch of a link: where it led, when, what the site said; `error` when it failed."""

    source_url: str
    final_url: str | None = None
    extractor: str | None = None
    fetched_at: str | None = None  # UTC, ISO 8601
    title: str | None = None
    uploader_id: str | None = None
    upload_date: str | None = None  # as the site gives it (yt-dlp: YYYYMMDD)
    path: str | None = None
    error: str | None = None

    def site(self) -> dict:
        return {"title": self.title, "uploader_id": self.uploader_id, "upload_date": self.upload_date}


def fetch_found(urls: Iterable[str], config: LinkConfig, offline: bool = False,
                progress: Progress | None = None) -> list[Found]:
    """Each link fetched, as a scan entry: the kept file, or an error row naming the link."""
    urls = list(dict.fromkeys(urls))  # the same link twice is fetched once
    if urls and offline:
        raise ConfigError(f"offline: cannot fetch {urls[0]} (links need the network)")
    found = []
    for url in urls:
        origin = fetch(url, config, progress)
        path = Path(origin.path) if origin.path else Path(urlsplit(url).path.rsplit("/", 1)[-1] or "link")
        found.append(Found(path, origin.error, origin))
    return found


def utc_now(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def fetch(url: str, config: LinkConfig, progress: Progress | None = None) -> Origin:
    """Fetch one link into the media folder; never raises for a bad link (the Origin carries the reason)."""
    fetched_at = utc_now()
    if urlsplit(url).scheme.lower() not in WEB_SCHEMES:
        return Origin(url, fetched_at=fetched_at, error=f"only http and https links are fetched, not "
                                                        f"{urlsplit(url).scheme}:// (local files are given as paths)")
    try:
        folder = config.folder()
        work = Path(tempfile.mkdtemp(prefix=".fetching-", dir=folder))  # 0700, removed whatever happens
    except OSError as exc:
        return Origin(url, fetched_at=fetched_at, error=f"cannot use the media folder: {exc.strerror or exc}")
    try:
        info = _download(url, work, config, progress)
        final = info.get("url") or info.get("webpage_url") or url
        if urlsplit(final).scheme.lower() not in WEB_SCHEMES:
            raise _Refused(f"the link leads to {urlsplit(final).scheme}://, which dfscan never follows")
        kept = _keep(_downloaded(info, work, config), folder, info)
        origin = Origin(url, final, info.get("extractor_key") or info.get("extractor"), fetched_at,
                        _text(info.get("title")), _text(info.get("uploader_id")), _text(info.get("upload_date")),
                        str(kept))
        _record(kept, origin)
        return origin
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # yt-dlp's DownloadError, RequestError, our own: one row, the scan goes on
        log.debug("cannot fetch %s", url, exc_info=True)
        return Origin(url, fetched_at=fetched_at, error=link_reason(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Refused(Exception):
    """A link dfscan will not fetch (too large, another scheme)."""


def link_reason(exc: BaseException) -> str:
    """yt-dlp's reason in one line, without its 'ERROR:' prefix and chained causes."""
    text = " ".join(str(exc).replace("\r", " ").split()) or type(exc).__name__  # yt-dlp puts \r in some
    if "file:" in text.lower() and ("adapter" in text or "scheme" in text.lower()):
        return "the link redirects to a local file (file://), which dfscan never follows"
    text = re.sub(r"^ERROR:\s*", "", text)
    text = re.sub(r"\s*\(caused by .*$", "", text)
    text = text.replace("; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues", "")
    return f"cannot fetch the link: {text}"[:300]


def _download(url: str, work: Path, config: LinkConfig, progress: Progress | None) -> dict:
    import yt_dlp

    said = _Quiet()

    def hook(d: dict) -> None:
        done = int(d.get("downloaded_bytes") or 0)
        if done > config.max_bytes:  # sizes not announced (HLS, chunked): stopped as soon as they pass
            raise _Refused(_too_large(config.max_bytes))
        if progress is not None:
            progress(url, done, d.get("total_bytes") or d.get("total_bytes_estimate"))

    options = {
        "outtmpl": str(work / "%(id).80B.%(ext)s"), "restrictfilenames": True, "windowsfilenames": True,
        "format": "best/bestvideo",  # one file holding the picture: merging formats would need ffmpeg
        "noplaylist": True, "playlist_items": "1", "max_filesize": config.max_bytes,
        "socket_timeout": config.timeout_s, "retries": 1, "fragment_retries": 1, "extractor_retries": 0,
        "quiet": True, "no_warnings": True, "noprogress": True, "logger": said, "progress_hooks": [hook],
        "overwrites": True, "continuedl": False, "enable_file_urls": False, "usenetrc": False,
        "cachedir": False,
    }
    if config.cookies:
        options["cookiefile"] = config.cookies
    with yt_dlp.YoutubeDL(options) as ydl:
        info = ydl.extract_info(url, download=True)
    if said.too_large:  # yt-dlp skips a file whose announced size passes max_filesize, and says only this
        raise _Refused(_too_large(config.max_bytes))
    if info and info.get("_type") == "playlist":
        entries = [e for e in info.get("entries") or () if e]
        if not entries:
            raise _Refused("the link is a playlist with no video")
        info = entries[0]
    return info or {}


class _Quiet:
    """yt-dlp's logger: its chatter goes to --verbose only (its errors come back as exceptions)."""

    too_large = False

    def debug(self, msg: str) -> None:
        self.too_large = self.too_large or "larger than max-filesize" in msg
        log.debug("yt-dlp: %s", msg)

    info = warning = error = debug


def _too_large(limit: int) -> str:
    return f"the download is larger than --max-download ({limit / 2 ** 20:,.0f} MiB)"


def _downloaded(info: dict, work: Path, config: LinkConfig) -> Path:
    """The file yt-dlp wrote (in `work`, nowhere else)."""
    files = [p for p in work.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
    if not files:
        size = info.get("filesize") or info.get("filesize_approx")
        if size and size > config.max_bytes:
            raise _Refused(_too_large(config.max_bytes))
        raise _Refused("yt-dlp found no video file at the link")
    return max(files, key=lambda p: p.stat().st_size)


def _keep(file: Path, folder: Path, info: dict) -> Path:
    """Move the fetched file into the media folder, named by its content: the same bytes fetched again
    reuse the file already kept (nothing the user fetched is overwritten)."""
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    sha = digest.hexdigest()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(info.get("id") or "video"))[:60].strip("._") or "video"
    ext = re.sub(r"[^A-Za-z0-9]", "", file.suffix)[:8] or "bin"
    kept = folder / f"{sha[:16]}-{stem}.{ext}"
    same = next(folder.glob(f"{sha[:16]}-*.{ext}"), None)
    if same is not None and same.is_file() and not same.is_symlink():
        return same
    os.chmod(file, 0o600)
    os.replace(file, kept)
    return kept


def _record(kept: Path, origin: Origin) -> None:
    """Append this fetch to the file's record beside it (`<file>.fetches.jsonl`, private)."""
    from ..common.dirs import private_file

    record = kept.with_name(kept.name + ".fetches.jsonl")
    try:
        private_file(record)
        with open(record, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({k: v for k, v in origin.__dict__.items() if k not in ("path", "error")}) + "\n")
    except OSError as exc:  # the file is kept all the same; the report carries the same facts
        log.warning("cannot record the fetch of %s: %s", origin.source_url, exc.strerror or exc)


def _text(value) -> str | None:
    return None if value is None else str(value)[:500]
