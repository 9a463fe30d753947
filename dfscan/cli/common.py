"""What every command shares: the exit codes, the group class, logging, terminal hygiene."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

# The one table of exit codes (README "Exit status", docs/uncertain.md). 1 means a finding (a FAKE):
# nothing else may exit 1. 4 means "needs a person": no FAKE, but at least one UNCERTAIN (its score lies
# in the model's uncertain band), so a script can tell it from 0, "clean". An error (2) outranks a
# FAKE (1), which outranks an UNCERTAIN (4).
#   0 clean · 1 FAKE found · 2 error · 3 bug · 4 UNCERTAIN only · 130 Ctrl-C · 141 stdout closed
EXIT_CLEAN, EXIT_FAKE, EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_UNCERTAIN = 4  # no FAKE, at least one UNCERTAIN: a person must look
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader went away


class StdoutClosed(Exception):
    """stdout was closed before a command finished printing (`dfscan … | head`)."""


class Group(click.Group):
    """Lists each command with its whole one-line description, wrapped rather than cut."""

    group_class = type  # sub-groups list theirs the same way

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:  # click would turn it into exit 1, which means "a FAKE was found"
            raise StdoutClosed() from exc

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=500)) for name, cmd in
                ((n, self.get_command(ctx, n)) for n in self.list_commands(ctx)) if cmd is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def shown(path) -> str:
    """A path as the terminal shows it (control characters and bad bytes made visible)."""
    from ..common.text import printable

    return printable(str(path))


def stdout_console(**options):
    """A rich console on stdout. Off a terminal (a pipe, a file) it is as wide as any line, so that no
    path is ever broken across lines for the script or the file that reads it."""
    from rich.console import Console

    console = Console(**options)
    return console if console.is_terminal else Console(width=PIPE_WIDTH, **options)


PIPE_WIDTH = 10_000  # wider than any path (4096 bytes at most on Linux) with its table around it


def default_store() -> Path:
    from ..store import default_store_path

    return default_store_path()


def fmt(value) -> str:
    """A metric for a table: 4 decimals, '-' when missing."""
    return "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


@contextmanager
def native_stderr_silenced(enabled: bool):
    """Keep FFmpeg's own warnings (printed by decord and OpenCV straight to fd 2) off the terminal.

    Python's sys.stderr moves to a copy of fd 2, so our messages and the progress bar
    still show; what C libraries write to fd 2 goes to /dev/null. --verbose keeps them.
    """
    try:
        real = enabled and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured by a test)
        real = False
    if not real:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding,
                           errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr.close()
        sys.stderr = python_stderr


_STDERR = None
PHASE_LOGGERS = ("dfscan.fetch", "dfscan.phase")  # what dfscan is doing now: one plain line each


def stderr_console():
    """The one rich console on stderr: log lines, phase lines, the spinner and the progress bar share it,
    so that a line printed while a spinner or bar is live lands above it, not on top of it."""
    global _STDERR
    if _STDERR is None:
        from rich.console import Console

        _STDERR = Console(stderr=True)  # it looks sys.stderr up at each write: redirections are followed
    return _STDERR


class PhaseLines(logging.Handler):
    """A download, a one-time conversion, a first-use pin: one plain line each, no level or prefix.

    Off a terminal a line is never wrapped (a path in it stays whole); on one, rich wraps at spaces.
    """

    prefix = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console = stderr_console()
            text = f"{record.levelname.lower()}: {record.getMessage()}" if self.prefix else record.getMessage()
            console.print(text, markup=False, highlight=False, soft_wrap=not console.is_terminal)
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from a handler
            self.handleError(record)


class PlainLines(PhaseLines):
    """Warnings off a terminal (a log file, a pipe): `warning: …` on one line, never wrapped."""

    prefix = True


def setup_logging(quiet: bool, verbose: bool) -> None:
    from rich.logging import RichHandler

    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    console = stderr_console()
    handler = (RichHandler(console=console, show_time=False, show_path=False, markup=False) if console.is_terminal
               else PlainLines())
    logger = logging.getLogger("dfscan")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if not verbose:  # huggingface_hub's retry chatter would drown our one clear message
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    for name in PHASE_LOGGERS:  # a download is never silent; neither is a one-time conversion
        phases = logging.getLogger(name)
        phases.handlers[:] = [PhaseLines()]
        phases.setLevel(logging.ERROR if quiet else logging.INFO)
        phases.propagate = False


def stdout_gone() -> None:
    """Point stdout at /dev/null so that the flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
