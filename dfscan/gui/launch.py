"""The windowed program (`dfscan-app`, the build's second executable, and `python -m dfscan.gui`): the window,
and nothing on a console. Arguments are paths to scan at once (a file manager's "Open with") and
`dfscan gui`'s options; errors before the window opens get the CLI's exit codes."""
from __future__ import annotations

import sys


def main() -> None:
    from ..cli import main as cli_main

    sys.exit(cli_main(["gui", *sys.argv[1:]]))
