"""`dfscan models`: the registry's models: list, fetch, verify, info."""
from __future__ import annotations

import sys

import click

from .common import EXIT_CLEAN, EXIT_ERROR, Group, setup_logging, stdout_console


@click.group("models", cls=Group)
def models() -> None:
    """Known models: list, fetch, verify, info."""
    setup_logging(quiet=False, verbose=False)


@models.command("list")
def models_list() -> None:
    """Every registry model, where its file is cached and whether its bytes check out."""
    from rich.table import Table

    from ..classifier.registry import frozen_models, load_registry, verify

    own = frozen_models()  # the standalone executable's own model beats the registry default
    table = Table(title="dfscan models")
    for col in ("name", "source", "aliases", "cached", "sha256"):
        table.add_column(col, overflow="fold")
    for i, entry in enumerate(load_registry()):
        status, path, _ = verify(entry, offline=True)
        src = str(entry.hub) if entry.hub else entry.source.get("path", "")
        name = entry.name + (" (default)" if i == 0 and not own else "")
        table.add_row(name, src, ", ".join(entry.aliases), str(path) if path else "not cached", _STATUS[status])
    out = stdout_console()
    out.print(table)
    if own:
        out.print(f"default (no --model): {own[0]}", highlight=False)


_STATUS = {"ok": "matches the record", "mismatch": "DIFFERS from the record",
           "unpinned": "not used yet (pinned at first use)", "missing": "-"}


@models.command("fetch")
@click.argument("name", default="reference")
@click.option("--refresh", is_flag=True, help="Download again even if a copy is cached, and accept (pin) the "
                                              "new file's SHA-256.")
def models_fetch(name: str, refresh: bool) -> None:
    """Download a model into the hub cache (needs the network) and print its revision and SHA-256."""

    from ..classifier.registry import HubRef, download, find_entry, resolve_model

    entry = find_entry(name)
    ref = entry.hub if entry else (HubRef.parse(name) if name.startswith("hf://") else None)
    got = None
    if ref is not None:  # its own messages: never "run models fetch"; --refresh downloads again
        got = download(ref, offline=False, hint=name, refresh=refresh, for_fetch=True)
    info = resolve_model(name, accept=refresh)
    out = stdout_console()
    out.print(f"{info.name}: {info.path}", highlight=False, markup=False)
    out.print(f"revision: {info.revision or '-'}\nsha256:   {info.sha256}", highlight=False, markup=False)
    if got is not None and got.from_cache:
        out.print("already in the hub cache: dfscan did not contact the hub (--refresh downloads it again)",
                  highlight=False, markup=False)
    for notice in info.notices:
        out.print(notice, highlight=False, markup=False)
    for w in info.warnings:
        out.print(f"note: {w}", highlight=False, style="yellow", markup=False)


@models.command("verify")
@click.argument("name", required=False)
def models_verify(name: str | None) -> None:
    """Check cached model files against their recorded SHA-256 (exit 1 if any differs or is missing)."""

    from ..classifier.registry import find_entry, load_registry, verify
    from ..common.errors import ModelError

    entries = load_registry()
    if name:
        entry = find_entry(name, entries)
        if entry is None:
            raise ModelError(f"no registry model named {name}")
        entries = [entry]
    out, bad = stdout_console(), 0
    for entry in entries:
        status, path, digest = verify(entry, offline=True)
        bad += status in ("mismatch", "missing")
        out.print(f"{entry.name}: {_STATUS[status] if status != 'missing' else 'not cached'}"
                  + (f"\n  {path}\n  sha256 {digest}" if path else ""), highlight=False)
    sys.exit(EXIT_ERROR if bad else EXIT_CLEAN)  # 1 means "a FAKE was found", nothing else


@models.command("info")
@click.argument("name", default="reference")
@click.option("--json", "as_json", is_flag=True, help="Print the model's metadata as JSON, for scripts.")
def models_info(name: str, as_json: bool) -> None:
    """A model's source, preprocessing, threshold, training data and published metrics.

    NAME is a registry name or alias, or a local .keras file (described from its sidecar JSON).
    """
    import json
    from pathlib import Path

    from ..classifier.registry import find_entry
    from ..common.errors import ModelError

    entry = find_entry(name)
    if entry is not None:
        data = entry.data
    elif name.endswith(".keras") or Path(name).expanduser().exists():
        data = _local_info(Path(name).expanduser())
    else:
        raise ModelError(f"no registry model named {name}, and no such .keras file (see `dfscan models list`)")
    if as_json:
        stdout_console().print_json(json.dumps(data))
    else:
        stdout_console(highlight=False).print(_info_table(data))


def _local_info(path) -> dict:
    """What `models info` shows of a local file: its sidecar's fields, and what dfscan makes of them."""
    from ..classifier.model import check_model_file
    from ..classifier.model_info import describe_local_model

    info = describe_local_model(path)  # validates the sidecar
    check_model_file(info)  # and the network, with the checks a scan makes: what scan refuses, info refuses
    p = info.preprocess
    return {**info.metadata, "name": info.name, "file": str(info.path), "sha256": info.sha256,
            "architecture": info.architecture, "output": info.output, "threshold": info.threshold,
            "uncertain": info.uncertain.as_list() if info.uncertain else None,
            "preprocessing": {"input_size": list(p.input_size), "color_order": p.color_order, "scale": p.scale,
                              "resize": p.resize, **({"margin": info.margin} if info.margin is not None else {})},
            **({"warnings": list(info.warnings)} if info.warnings else {})}


def _info_table(data: dict):
    """Field | value rows; nested objects one level down as `key: value` lines."""
    from rich.table import Table

    from ..common.text import printable

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in data.items():
        table.add_row(printable(str(key)), _info_value(value))
    return table


def _info_value(value) -> str:
    from ..common.text import printable

    if isinstance(value, dict):
        return "\n".join(f"{printable(str(k))}: {_info_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_info_value(v) for v in value) if all(not isinstance(v, (dict, list)) for v in value) \
            else "; ".join(_info_value(v) for v in value)
    return "—" if value is None else printable(str(value))
