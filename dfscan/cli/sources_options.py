"""`dfscan scan`'s options for links and content credentials (dfscan/sources), and the download bar."""
from __future__ import annotations

import re
from pathlib import Path

import click

from ..sources.links import DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_DOWNLOAD, is_link

_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def _size(ctx, param, value):
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.I)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter("a size such as 500M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _options(f):
    for option in reversed((
        click.option("--media-dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
                     help="Where fetched links are kept (the evidence; readable by you only).  "
                          "[default: media/ in the dfscan data folder]"),
        click.option("--max-download", default=f"{DEFAULT_MAX_DOWNLOAD >> 30}G", callback=_size, metavar="SIZE",
                     show_default=True, help="Give up a link whose download passes SIZE (e.g. 500M)."),
        click.option("--fetch-timeout", default=DEFAULT_FETCH_TIMEOUT, type=click.FloatRange(min=1), metavar="S",
                     show_default=True, help="Give up a link whose server sends nothing for S seconds."),
        click.option("--cookies", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
                     help="A Netscape cookies file for links behind a login.  [default: no cookies, no login]"),
        click.option("--trust-anchors", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     metavar="FILE", help="PEM certificates a C2PA signer must chain to for provenance=valid "
                                          "(no trust list ships with dfscan: without this, signed files read "
                                          "'untrusted')."),
    )):
        f = option(f)
    return f


OPTIONS = _options


def pop_config(options: dict) -> dict:
    """These options out of a command's keyword arguments, as ScanConfig fields."""
    from ..sources.links import LinkConfig

    media, cookies, anchors = options.pop("media_dir"), options.pop("cookies"), options.pop("trust_anchors")
    links = LinkConfig(media_dir=str(media) if media else None, max_bytes=options.pop("max_download"),
                       timeout_s=options.pop("fetch_timeout"), cookies=str(cookies) if cookies else None)
    return {"links": links, "trust_anchors": _anchors(anchors) if anchors else None}


def _anchors(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="--trust-anchors")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise click.BadParameter(f"{path} holds no PEM certificate", param_hint="--trust-anchors")
    return text


def check_links(paths, offline: bool) -> None:
    """--offline refuses links at once, before the model is loaded."""
    links = [p for p in paths if is_link(p)]
    if links and offline:
        raise click.UsageError(f"--offline: cannot fetch {links[0]} (links need the network); "
                               "drop --offline or give local files")


def as_paths(items) -> list:
    """Command-line items: links stay text, everything else becomes a Path."""
    return [item if is_link(item) else Path(item) for item in items]


class FetchBar:
    """A result sink's optional `fetching`: a download bar on stderr while links are fetched."""

    def __init__(self, err, quiet: bool):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(TextColumn("fetching"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TextColumn("{task.description}"), console=err, transient=True, disable=quiet)
        self.tasks: dict[str, int] = {}

    def fetching(self, url: str, done: int, total: int | None) -> None:
        from ..common.text import printable

        if url not in self.tasks:
            self.progress.start()
            self.tasks[url] = self.progress.add_task(printable(url)[-60:], total=total)
        self.progress.update(self.tasks[url], completed=done, total=total)

    def start(self, found) -> None:
        self.progress.stop()  # the downloads are over: the scan's own bar takes the line

    def add(self, result) -> None:
        pass

    def stop(self) -> None:
        self.progress.stop()
