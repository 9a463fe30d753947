"""Hostile files and paths, round three (issue 27): walks that never end, files that are no files, reports and
stores at paths dfscan was merely given. Each test fails on the code before the fix; all are quick."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfscan.discover import LINK_LOOP, discover


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class CountingScandir:
    """os.scandir, counting the folders read (the real function does the reading)."""

    def __init__(self):
        self.real, self.calls = os.scandir, 0

    def __call__(self, path):
        self.calls += 1
        return self.real(path)


# --- item 4: links that fan out, links that leave the named tree, pseudo file systems -----------------------

def test_folders_reached_by_many_links_are_read_once(tmp_path, monkeypatch):
    levels = 18  # two links per level to the next: 2**18 ways down, 19 folders
    for i in range(levels + 1):
        (tmp_path / f"l{i}").mkdir()
    for i in range(levels):
        os.symlink(tmp_path / f"l{i + 1}", tmp_path / f"l{i}" / "a")
        os.symlink(tmp_path / f"l{i + 1}", tmp_path / f"l{i}" / "b")
    touch(tmp_path / f"l{levels}" / "v.mp4")
    counting = CountingScandir()
    monkeypatch.setattr(os, "scandir", counting)
    found = discover([tmp_path / "l0"], follow_links=True)
    assert [f.error for f in found] == [None]
    assert found[0].path.name == "v.mp4"
    assert counting.calls == levels + 1


def test_links_to_folders_outside_the_named_folder_are_followed_only_when_asked(tmp_path):
    touch(tmp_path / "elsewhere" / "private.mp4")
    touch(tmp_path / "named" / "inside" / "ok.mp4")
    os.symlink(tmp_path / "elsewhere", tmp_path / "named" / "out")
    os.symlink(tmp_path / "named" / "inside", tmp_path / "named" / "in")  # stays inside: followed (once)
    by_name = {f.path.relative_to(tmp_path).as_posix(): f.error for f in discover([tmp_path / "named"])}
    assert by_name.keys() == {"named/in/ok.mp4", "named/out"}
    assert by_name["named/in/ok.mp4"] is None
    assert "outside the folder named" in by_name["named/out"] and "--follow-links" in by_name["named/out"]
    followed = {f.path.relative_to(tmp_path).as_posix(): f.error
                for f in discover([tmp_path / "named"], follow_links=True)}
    assert followed == {"named/in/ok.mp4": None, "named/out/private.mp4": None}


@pytest.mark.parametrize("target", ["/proc", "/sys/kernel", "/dev"])
def test_pseudo_file_systems_are_never_walked(tmp_path, monkeypatch, target):
    if not os.path.isdir(target):
        pytest.skip(f"no {target} here")
    os.symlink(target, tmp_path / "system")
    touch(tmp_path / "v.mp4")
    counting = CountingScandir()
    monkeypatch.setattr(os, "scandir", counting)
    found = discover([tmp_path], follow_links=True)
    assert counting.calls == 1  # the named folder only
    by_name = {f.path.name: f.error for f in found}
    assert by_name["v.mp4"] is None
    assert "pseudo file system" in by_name["system"]
    (named,) = discover([target])
    assert "pseudo file system" in named.error


# --- item 6 and "a bind-mount loop called a symbolic link loop" --------------------------------------------

def test_folders_deeper_than_the_recursion_limit_are_walked(tmp_path):
    depth = sys.getrecursionlimit() + 100
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(depth):  # by file descriptor: pathlib's mkdir(parents=True) recurses too
            os.mkdir("d", dir_fd=fd)
            fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        os.close(os.open("deep.mp4", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        (found,) = discover([tmp_path])
    finally:
        remove_chain(tmp_path)
    assert found.error is None and found.path.name == "deep.mp4"
    assert len(found.path.relative_to(tmp_path).parts) == depth + 1


def remove_chain(top: Path) -> None:
    """Remove top/d/d/.../deep.mp4 a level at a time from the top (shutil.rmtree would recurse too deep)."""
    while (top / "d").exists():
        for name in os.listdir(top / "d"):
            if name != "d":
                os.unlink(top / "d" / name)
        if (top / "d" / "d").exists():
            os.rename(top / "d" / "d", top / "next")
        os.rmdir(top / "d")
        if (top / "next").exists():
            os.rename(top / "next", top / "d")


def test_a_bind_mount_loop_is_not_called_a_symbolic_link_loop(tmp_path):
    touch(tmp_path / "a" / "v.mp4")
    (tmp_path / "a" / "again").mkdir()
    mounted = subprocess.run(["mount", "--bind", str(tmp_path / "a"), str(tmp_path / "a" / "again")],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip("cannot bind-mount here (not root, or no mount namespace)")
    try:
        by_name = {f.path.relative_to(tmp_path).as_posix(): f.error for f in discover([tmp_path / "a"])}
    finally:
        subprocess.run(["umount", str(tmp_path / "a" / "again")], check=True)
    assert by_name["a/v.mp4"] is None
    assert "bind mount" in by_name["a/again"] and "symbolic" not in by_name["a/again"]
    assert len(by_name) == 2


def test_a_link_loop_is_still_named_as_one(tmp_path):
    touch(tmp_path / "v" / "ok.mp4")
    os.symlink(tmp_path / "v", tmp_path / "v" / "loop")
    assert {f.path.name: f.error for f in discover([tmp_path / "v"])} == {"ok.mp4": None, "loop": LINK_LOOP}
