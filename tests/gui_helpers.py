"""A real X display for the window's tests (Xvfb), and a loop that lets Tk run until something holds."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """Start Xvfb on a free display number; (the process, ':N')."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()  # Xvfb writes the display's number once it accepts clients
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


@pytest.fixture(scope="session")
def display():
    """A display for Tk: Xvfb of our own (CI installs it: .ci/run); skipped, with the reason, without one."""
    if shutil.which("Xvfb") is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb is not installed (apt-get install xvfb): the window's tests need it")
        pytest.skip("Xvfb is not installed (apt-get install xvfb): the window's tests need a display")
    proc, name = start_xvfb()
    saved = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = name
    yield name
    if saved is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = saved
    proc.terminate()
    proc.wait(10)


def run_until(root, done, timeout: float = 300.0, step: float = 0.01) -> None:
    """Run Tk's event loop until `done()` holds; fail after `timeout` seconds (a hang, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the window never got there"
        root.update()
        time.sleep(step)


def window_ids(env: dict, title: str, proc: subprocess.Popen, timeout: float = 60) -> str:
    """The X ids of windows whose title matches `title` (xdotool), once one appears; "" if `proc` ends first."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (apt-get install xdotool): it finds the window by its title")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        # xdotool is the test's tool, found on the test's PATH (a frozen program's env has an empty one)
        found = subprocess.run(["xdotool", "search", "--name", title], env={**os.environ, "DISPLAY": env["DISPLAY"]},
                               capture_output=True, text=True).stdout.strip()
        if found:
            return found
    return ""
