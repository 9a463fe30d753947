"""dfscan's per-user folders: the same places on each platform as the README names, one lookup for all."""
import os
import stat
import sys
from pathlib import Path

import pytest

from dfscan.common import dirs
from dfscan.classifier import pins
from dfscan import store


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "LOCALAPPDATA", "DFSCAN_CACHE_DIR", "DFSCAN_STORE",
                 "DFSCAN_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("platform, data, cache", [
    ("linux", ".local/share/dfscan", ".cache/dfscan"),
    ("darwin", "Library/Application Support/dfscan", "Library/Caches/dfscan"),
    ("win32", "AppData/Local/dfscan", "AppData/Local/dfscan/cache"),
])
def test_each_platforms_folders(home, monkeypatch, platform, data, cache):
    monkeypatch.setattr(sys, "platform", platform)
    assert dirs.data_dir() == home / data
    assert dirs.cache_dir() == home / cache
    # Everything that keeps files per user finds them through these two.
    assert store.default_store_path() == home / data / "results.sqlite"
    assert pins.pins_path() == home / data / "model-pins.json"


def test_the_environment_moves_them(home, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    assert dirs.data_dir() == tmp_path / "xdg-data" / "dfscan"
    assert dirs.cache_dir() == tmp_path / "xdg-cache" / "dfscan"
    monkeypatch.setenv("DFSCAN_CACHE_DIR", str(tmp_path / "mine"))
    assert dirs.cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("DFSCAN_STORE", str(tmp_path / "s" / "r.sqlite"))
    assert pins.pins_path() == tmp_path / "s" / "model-pins.json"  # beside the store it follows
    monkeypatch.setenv("DFSCAN_DATA_DIR", str(tmp_path / "d"))
    assert pins.pins_path() == tmp_path / "d" / "model-pins.json"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert dirs.data_dir() == tmp_path / "local" / "dfscan"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
def test_private_folders_are_made_and_dfscans_own_tightened(home, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    made = dirs.private_dir(tmp_path / "a" / "b")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in (made, made.parent))
    assert dirs.is_private_dir(made)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    dirs.private_dir(shared)  # a folder the user chose keeps its mode
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755 and not dirs.is_private_dir(shared)
    own = dirs.cache_dir() / "models"
    own.mkdir(parents=True)
    os.chmod(own, 0o755)
    dirs.private_dir(own)  # dfscan's own is tightened
    assert dirs.is_private_dir(own)
    link = tmp_path / "link"
    link.symlink_to(made)
    assert not dirs.is_private_dir(link)
