"""The `dfscan` command: a thin click layer over the library.

Options become a frozen config (`options` declares the scan settings once, for `scan` and
`evaluate`); the library does the work; `main` is the one place where exceptions turn into exit
codes. One module per command: `scan` (with `scan_run`), `models`, `store`, `train`, `evaluate`.
Heavy modules (numpy, OpenCV, TensorFlow) are imported inside commands so that --help and
--version are instant.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click

from .. import __version__
from ..common.errors import DfscanError
from .common import (EXIT_BROKEN_PIPE, EXIT_CLEAN, EXIT_ERROR, EXIT_FAKE, EXIT_INTERNAL, EXIT_INTERRUPTED,
                     EXIT_UNCERTAIN, Group, StdoutClosed, stdout_gone)
from .evaluate import evaluate as evaluate_command
from .gui import gui as gui_command
from .label import label as label_command
from .models import models as models_group
from .scan import scan as scan_command
from .store import store_group
from .train import train as train_command
from .watch import watch as watch_command

__all__ = ["cli", "main", "run", "EXIT_CLEAN", "EXIT_FAKE", "EXIT_ERROR", "EXIT_INTERNAL", "EXIT_INTERRUPTED",
           "EXIT_BROKEN_PIPE", "EXIT_UNCERTAIN"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="dfscan")
def cli() -> None:
    """dfscan: find deepfaked faces in video files."""


for _command in (scan_command, models_group, store_group, train_command, evaluate_command, label_command,
                 watch_command, gui_command):
    cli.add_command(_command)


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2; earlier ones print help themselves


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every exception to one exit code."""
    _broken_pipe_is_an_error()
    previous = _stop_signals_interrupt()
    try:
        cli.main(args=argv, prog_name="dfscan", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_ERROR)
    except click.exceptions.Abort:  # Ctrl-C before a scan's own handler was installed (click's form of it)
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except _NO_ARGS as exc:  # `dfscan` alone: its help, on stdout, ending in a newline, as `dfscan --help`
        if _no_terminal():  # double-clicked (no terminal attached): the window, not a help text nobody sees
            return main(["gui"])
        click.echo(exc.ctx.get_help() if exc.ctx is not None else cli.get_help(click.Context(cli)))
        return EXIT_CLEAN
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except DfscanError as exc:
        click.echo(f"dfscan: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except (BrokenPipeError, StdoutClosed):  # stdout closed early (`| head`) outside a scan, which handles its own
        stdout_gone()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: never exit 1, which means "a FAKE was found"
        _internal_error(exc)
        return EXIT_INTERNAL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return EXIT_CLEAN


def _no_terminal() -> bool:
    """No terminal on stdin nor stdout, and a display to open a window on: started from a file manager."""
    from ..gui import display_available

    def tty(stream) -> bool:
        try:
            return stream is not None and stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    return not tty(sys.stdin) and not tty(sys.stdout) and display_available() \
        and not os.environ.get("DFSCAN_NO_WINDOW")


def _stop_signals_interrupt() -> dict:
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, in every command: the `finally`
    blocks that remove temporary files (a model's weight copy, a conversion) then run. Returns the
    handlers replaced. A scan installs its own (scan_run.Interrupts), which also remembers the signal."""
    from .scan_run import stop_signals

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, stop) for signum in stop_signals() if signum != signal.SIGINT
            and signal.getsignal(signum) is signal.SIG_DFL}


def _internal_error(exc: Exception) -> None:
    from ..common.errors import first_line

    if logging.getLogger("dfscan").isEnabledFor(logging.DEBUG):
        import traceback

        traceback.print_exc()
    click.echo(f"dfscan: internal error: {type(exc).__name__}: {first_line(exc, 300)}\n"
               "This is a bug in dfscan, not a finding about your files. Please report it "
               "(run again with --verbose to see the traceback).", err=True)


def _broken_pipe_is_an_error() -> None:
    """rich's default for a closed stdout is SystemExit(1), which reads as "a FAKE was found".

    Raise BrokenPipeError instead: a scan then keeps its own status, other commands exit 141.
    """
    from rich.console import Console

    def on_broken_pipe(console) -> None:
        console.quiet = True
        raise BrokenPipeError(32, "stdout was closed")

    Console.on_broken_pipe = on_broken_pipe


def run() -> None:
    """Console-script wrapper."""
    code = main()
    if code == EXIT_INTERRUPTED:
        # Interrupted: the partial report is closed and every finished result committed. What is
        # left are decoding threads busy with videos whose results nobody will read; exiting
        # normally would wait for them (seconds to minutes on a loaded machine).
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)
