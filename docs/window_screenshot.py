"""Make docs/window.png: the window after a scan, drawn by Tk on an X display and captured with ImageMagick.

    python docs/window_screenshot.py [--out docs/window.png] [--scale 1.0]

Needs Xvfb (started here when no DISPLAY is set) and ImageMagick's `import`. It scans the dev clips
(../shared/data/dev) with Meso-4 (../shared/models/mesonet, as tests/test_meso4.py builds it) when they
are there, else the tests' synthetic clips with their colour-keyed model; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]


def clips_and_model(work: Path) -> tuple[list[Path], Path]:
    from test_meso4 import DEV, MESO, PINNED, build_meso4

    if MESO.is_file() and all((DEV / name).is_file() for name in PINNED):
        return [DEV / name for name in PINNED] + [DEV / "ordinary"], build_meso4(work / "meso4.keras")
    from conftest import build_colour_model
    from report_screenshot import make_clips

    make_clips(work / "clips")
    return [work / "clips"], build_colour_model(work / "colour.keras")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "window.png")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    if shutil.which("import") is None:
        raise SystemExit("ImageMagick's `import` is needed (apt-get install imagemagick)")
    xvfb = None
    if not os.environ.get("DISPLAY"):
        from gui_helpers import start_xvfb

        xvfb, os.environ["DISPLAY"] = start_xvfb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            shoot(Path(tmp), args.out, args.scale)
    finally:
        if xvfb is not None:
            xvfb.terminate()
    print(f"wrote {args.out}")


def shoot(work: Path, out: Path, scale: float) -> None:
    import tkinter as tk

    from dfscan.gui.app import App
    from dfscan.gui.settings import Settings

    paths, model = clips_and_model(work)
    root = tk.Tk(className="dfscan")
    app = App(root, paths, Settings(model=str(model), store=str(work / "store.sqlite")), opener=lambda p: None,
              scale=scale)
    app.scan()
    deadline = time.monotonic() + 600
    while app.scanning and time.monotonic() < deadline:
        root.update()
        time.sleep(0.01)
    app.table.sort("score")  # the most suspicious first, as people will sort it
    root.update()
    time.sleep(0.5)
    root.update()
    subprocess.run(["import", "-window", _window_id(root), str(out)], check=True)
    root.destroy()


def _window_id(root) -> str:
    """The X window with the menu bar (Tk's wrapper, found by title with xdotool), else Tk's own frame."""
    if shutil.which("xdotool"):
        found = subprocess.run(["xdotool", "search", "--name", f"^{root.title()}$"], capture_output=True,
                               text=True).stdout.split()
        if found:
            return found[0]
    return root.wm_frame()


if __name__ == "__main__":
    main()
