"""Hostile files and paths, round three (issue 27): walks that never end, files that are no files, reports and
stores at paths dfscan was merely given. Each test fails on the code before the fix; all are quick."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfscan.scanning.discover import LINK_LOOP, discover


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
    # Python's default limit (1,000) plus 100, as in the issue; set below, since the process running the
    # tests may have raised it (and a deeper chain would pass PATH_MAX, 4,096 bytes, before the limit)
    limit, depth = 1000, 1100
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(depth):  # by file descriptor: pathlib's mkdir(parents=True) recurses too
            os.mkdir("d", dir_fd=fd)
            fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        os.close(os.open("deep.mp4", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    saved = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(limit)
        (found,) = discover([tmp_path])
    finally:
        sys.setrecursionlimit(saved)
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


# --- item 5 and "FIFO/socket/device files called empty": what is no file is named; the container before the hash ---

def read_csv(path: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return {Path(row["path"]).name: row for row in csv.DictReader(fh)}


@pytest.fixture
def odd_files(tmp_path, clips):
    import socket

    d = tmp_path / "odd"
    d.mkdir()
    (d / "good.mp4").write_bytes(clips["fake_mp4"].read_bytes())
    with open(d / "huge.mp4", "wb") as fh:  # sparse: 1 TiB of zeros that take no disk
        fh.truncate(2**40)
    os.mkfifo(d / "pipe.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.mp4"))
    os.symlink("/dev/zero", d / "zero.mp4")
    yield d
    sock.close()


def test_pipes_sockets_devices_and_a_terabyte_of_zeros_get_their_own_rows_at_once(odd_files, colour_model, tmp_path):
    from dfscan.cli import main

    out = tmp_path / "out.csv"
    code = main(["scan", str(odd_files), "--model", str(colour_model), "--no-store", "--csv", str(out), "-q"])
    assert code == 1  # the red clip is FAKE; the others are ERROR rows, and the scan ended
    rows = read_csv(out)
    assert rows["good.mp4"]["verdict"] == "FAKE"
    assert rows["pipe.mp4"]["error"] == "a named pipe (FIFO), not a video file"
    assert rows["sock.mp4"]["error"] == "a socket, not a video file"
    assert rows["zero.mp4"]["error"] == "a character device, not a video file"
    assert rows["huge.mp4"]["verdict"] == "ERROR" and rows["huge.mp4"]["sha256"] == ""  # refused before hashing
    assert "empty" not in " ".join(r["error"] for r in rows.values())


def test_a_big_files_container_check_that_hangs_is_abandoned_and_the_next_file_is_checked(clips, monkeypatch,
                                                                                          tmp_path):
    """The check before hashing opens the file with FFmpeg: in a worker process with a deadline, as decoding."""
    import hashlib
    import shutil

    from dfscan.scanning import files
    from dfscan.decode.worker import DecodeTimeout
    from dfscan.common.errors import VideoError

    stuck = tmp_path / "stuck-open.mp4"
    shutil.copy(clips["fake_mp4"], stuck)
    monkeypatch.setattr(files, "CHECK_CONTAINER_FIRST", 1)  # every file is "big"
    monkeypatch.setattr(files, "CHECK_TIMEOUT_S", 2.0)
    monkeypatch.setenv("DFSCAN_TEST_SLOW_DECODE", "stuck-open.mp4")  # the worker's open of this file hangs
    with pytest.raises(DecodeTimeout, match="did not finish in 2 s"):
        files.video_sha256(stuck)
    good = Path(shutil.copy(clips["fake_mp4"], tmp_path / "good.mp4"))
    assert files.video_sha256(good) == hashlib.sha256(good.read_bytes()).hexdigest()  # a fresh worker checks it
    zeros = tmp_path / "zeros.mp4"
    zeros.write_bytes(bytes(4096))
    with pytest.raises(VideoError) as refused:  # refused by the check in the worker, before a byte is hashed
        files.video_sha256(zeros)
    assert not isinstance(refused.value, DecodeTimeout)


def test_hashing_a_big_file_says_how_far_it_got(clips, monkeypatch, caplog):
    import hashlib
    import logging

    from dfscan.scanning import files

    monkeypatch.setattr(files, "HASH_PROGRESS_FROM", 1)  # every file is "big", every block worth a line
    monkeypatch.setattr(files, "HASH_PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(files, "_CHUNK", 4096)
    with caplog.at_level(logging.INFO, logger="dfscan.phase"):
        digest = files.video_sha256(clips["fake_mp4"])
    assert digest == hashlib.sha256(clips["fake_mp4"].read_bytes()).hexdigest()
    lines = [r.getMessage() for r in caplog.records if r.name == "dfscan.phase"]
    assert lines and all(line.startswith(f"hashing {clips['fake_mp4'].name}: ") for line in lines)
    assert lines[-1].endswith("(100%)")


# --- item 10: reports go to regular files; devices and pipes are written in place, links never replaced ----------

def null_device(path: Path) -> Path:
    """A character device like /dev/null, made in the test's folder (the real one must survive a failing test)."""
    import stat

    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    os.chmod(path, 0o666)  # as /dev/null's (mknod's mode passes through the umask)
    return path


def scan_args(clips, colour_model, *extra) -> list[str]:
    return ["scan", str(clips["fake_mp4"]), "--model", str(colour_model), "--no-store", "-q", *extra]


def test_reports_at_devices_are_written_into_them_never_replacing_them(clips, colour_model, tmp_path):
    import stat

    from dfscan.cli import main

    null = null_device(tmp_path / "null")
    os.symlink(null, tmp_path / "stdout")  # like /dev/stdout: a link to a device
    before = sorted(os.listdir(tmp_path))
    code = main(scan_args(clips, colour_model, "--csv", str(null), "--jsonl", str(tmp_path / "stdout"), "--overwrite"))
    assert code == 1
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert os.readlink(tmp_path / "stdout") == str(null)
    assert sorted(os.listdir(tmp_path)) == before  # no .partial, no temporary file, nothing replaced


def test_reports_into_named_pipes_reach_the_reader(clips, colour_model, tmp_path):
    import threading

    from dfscan.cli import main

    got = {}
    for name in ("csv", "jsonl"):
        os.mkfifo(tmp_path / name)

    def read(name):
        with open(tmp_path / name, "rb") as fh:
            got[name] = fh.read()

    readers = [threading.Thread(target=read, args=(n,), daemon=True) for n in ("csv", "jsonl")]
    for r in readers:
        r.start()
    code = main(scan_args(clips, colour_model, "--csv", str(tmp_path / "csv"), "--jsonl", str(tmp_path / "jsonl")))
    for r in readers:
        r.join(60)
    assert code == 1
    assert got["csv"].startswith(b"path,verdict,") and b",FAKE," in got["csv"]
    assert b'"verdict": "FAKE"' in got["jsonl"] and got["jsonl"].count(b"\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["csv", "jsonl"]


@pytest.mark.parametrize("flag", ["--csv", "--jsonl", "--json"])
def test_a_link_to_a_file_at_a_report_name_is_neither_followed_nor_removed(clips, colour_model, tmp_path, flag, capsys):
    from dfscan.cli import main

    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    os.symlink(target, tmp_path / "report")
    code = main(scan_args(clips, colour_model, flag, str(tmp_path / "report"), "--overwrite"))
    assert code == 2
    assert "symbolic link" in capsys.readouterr().err
    assert os.readlink(tmp_path / "report") == str(target) and target.read_text() == "keep me"


# --- items 11 and 12: the store and the cache at paths dfscan was given -------------------------------------------

def test_a_device_as_the_store_is_refused_untouched_and_the_scan_goes_on(clips, colour_model, tmp_path, caplog):
    import stat

    from dfscan.cli import main

    null = null_device(tmp_path / "null")
    code = main(["scan", str(clips["fake_mp4"]), "--model", str(colour_model), "--store", str(null), "-q",
                 "--csv", str(tmp_path / "out.csv")])
    assert code == 1
    assert stat.S_IMODE(os.lstat(null).st_mode) == 0o666 and stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null", "out.csv"]  # no null-journal, no null-wal


def test_a_cache_folder_given_by_the_user_keeps_its_mode(tmp_path, monkeypatch):
    import stat

    from dfscan.common import dirs

    given = tmp_path / "shared"
    given.mkdir()
    os.chmod(given, 0o1777)  # like /tmp
    monkeypatch.setenv(dirs.CACHE_ENV, str(given))
    dirs.private_dir(given)
    made = dirs.private_dir(given / "models")
    assert stat.S_IMODE(given.stat().st_mode) == 0o1777
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_a_link_planted_at_the_store_name_is_refused(tmp_path):
    from dfscan.store import ResultStore, StoreUnusable

    os.symlink(tmp_path / "planted.sqlite", tmp_path / "dangling.sqlite")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "existing.sqlite")
    for name in ("dangling.sqlite", "existing.sqlite"):
        with pytest.raises(StoreUnusable, match="symbolic link"):
            ResultStore(tmp_path / name, strict=True)
    assert not (tmp_path / "planted.sqlite").exists()
    assert victim.read_text() == "precious"
    os.symlink(victim, tmp_path / "real.sqlite-journal")  # a side file SQLite would write through
    with pytest.raises(StoreUnusable, match="symbolic link"):
        ResultStore(tmp_path / "real.sqlite", strict=True)
    assert victim.read_text() == "precious"


def test_store_clear_deletes_only_a_dfscan_store(tmp_path):
    from dfscan.cli import main
    from dfscan.store import ResultStore

    notes = tmp_path / "thesis.docx"
    notes.write_bytes(b"PK\x03\x04 a document")
    assert main(["store", "--store", str(notes), "clear", "--yes"]) == 2
    assert notes.exists()
    store = tmp_path / "results.sqlite"
    ResultStore(store).close()
    assert main(["store", "--store", str(store), "clear", "--yes"]) == 0
    assert not store.exists()


# --- item 7 and "a named unreadable file or folder is refused by click": as an ordinary user, not root -------------

NOBODY = 65534
# Root without the capabilities that let it read and enter anything: what an ordinary user meets, for files
# of another user, where `nobody` cannot run this Python (installed under root's own home, say).
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


@pytest.fixture
def unprivileged():
    """(run, base, owner): `run(args)` runs `dfscan <args>` as a user without root's powers, in `base` (a folder it
    may enter; pytest's own are root's only); what `owner` owns and keeps to itself, that user may not read."""
    import shutil
    import tempfile

    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to give up its powers) and setpriv")
    base = Path(tempfile.mkdtemp(prefix="dfscan-nobody-"))
    os.chmod(base, 0o755)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), HOME=str(base), XDG_CACHE_HOME=str(base / "cache"),
               XDG_DATA_HOME=str(base / "data"))
    nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    for prefix, owner in ((nobody, 0), (NO_DAC, NOBODY)):
        # the same interpreter, not another one found on the way (a venv whose base Python `nobody` may not
        # enter runs the system's Python with the venv's packages)
        same = f"import sys, click, av, numpy, dfscan.cli; assert sys.version == {sys.version!r}, sys.version"
        probe = subprocess.run([*prefix, sys.executable, "-c", same], env=env, capture_output=True, cwd=base)
        if probe.returncode == 0:
            break
    else:
        shutil.rmtree(base)
        pytest.skip(f"cannot run this Python without root's powers here: {probe.stderr[-200:]!r}")
    if owner == 0:
        os.chown(base, NOBODY, NOBODY)  # nobody's home: it writes the report and its caches there

    def run(args: list[str], **more_env: str) -> subprocess.CompletedProcess:
        code = "import sys\nfrom dfscan.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        return subprocess.run([*prefix, sys.executable, "-c", code, *args], env={**env, **more_env}, cwd=base,
                              capture_output=True, text=True, timeout=300)

    yield run, base, owner
    shutil.rmtree(base)


def keep_to(owner: int, path: Path, mode: int) -> None:
    os.chown(path, owner, owner, follow_symlinks=False)
    os.chmod(path, mode)


def test_what_an_ordinary_user_may_not_read_is_one_error_row_each(unprivileged, clips, colour_model):
    import csv
    import shutil

    run, base, owner = unprivileged
    model = base / colour_model.name
    shutil.copy(colour_model, model)
    os.chmod(model, 0o644)
    shutil.copy(clips["fake_mp4"], base / "good.mp4")
    os.chmod(base / "good.mp4", 0o644)
    locked = base / "locked"  # a folder we may not enter, with a video in it
    touch(locked / "inside.mp4")
    keep_to(owner, locked, 0o700)
    touch(base / "unreadable.mp4")  # a file we may not read
    keep_to(owner, base / "unreadable.mp4", 0o600)
    mixed = base / "mixed"
    (mixed / "listonly").mkdir(parents=True)
    os.symlink(locked / "inside.mp4", mixed / "other.mp4")  # into someone else's folder
    os.symlink(base / "good.mp4", mixed / "listonly" / "link.mp4")
    keep_to(owner, mixed / "listonly", 0o744)  # names may be listed, not looked up
    out = base / "out.csv"
    proc = run(["scan", str(base / "good.mp4"), str(locked / "inside.mp4"), str(base / "unreadable.mp4"),
                str(locked), str(mixed), "--model", str(model), "--no-store", "-q", "--csv", str(out)])
    assert proc.returncode == 1 and out.exists(), proc.stderr[-3000:]  # FAKE; the rest are rows, not a refusal (2)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {os.path.relpath(r["path"], base): r for r in csv.DictReader(fh)}
    assert rows.pop("good.mp4")["verdict"] == "FAKE"
    assert {name: r["verdict"] for name, r in rows.items()} == dict.fromkeys(
        ["locked/inside.mp4", "unreadable.mp4", "locked", "mixed/other.mp4", "mixed/listonly/link.mp4"], "ERROR")
    assert all("ermission denied" in r["error"] for r in rows.values()), {n: r["error"] for n, r in rows.items()}


# --- smaller: /dev/zero as a registry path; a queue's list of a great many stale names ---------------------------

def test_a_device_as_a_registry_models_file_is_called_one(tmp_path, monkeypatch):
    import json

    from dfscan.classifier import registry
    from dfscan.common.errors import ModelError

    listed = tmp_path / "registry.json"
    listed.write_text(json.dumps({"models": [{"name": "zero", "source": {"path": "/dev/zero"}}]}))
    monkeypatch.setenv(registry.REGISTRY_ENV, str(listed))
    with pytest.raises(ModelError, match="not a regular file") as caught:
        registry.resolve_model("zero")
    assert "not found" not in str(caught.value)


def test_stale_names_in_a_list_are_counted_not_each_logged(clips, colour_model, tmp_path, capfd, monkeypatch):
    from dfscan.cli import main, scan_run

    monkeypatch.setattr(scan_run, "TABLE_ROWS", 5)  # the terminal's table is bounded too (1,000 rows)

    listed = tmp_path / "queue.txt"
    listed.write_text("".join(f"{tmp_path}/gone-{i}.mp4\n" for i in range(50)) + f"{clips['fake_mp4']}\n")
    out = tmp_path / "out.csv"
    code = main(["scan", "--from-file", str(listed), "--model", str(colour_model), "--no-store", "--csv", str(out)])
    assert code == 2  # listed names that do not exist: the scan's status says so
    std = capfd.readouterr()
    err = std.err
    assert err.count("no such file or folder") <= 10 + 1  # the first ten by name, then a count
    assert "FAKE" in std.out and "… and 46 less suspicious videos, in the reports only" in std.out
    assert "40 more paths that do not exist" in err
    assert len(read_csv(out)) == 51  # each still has its row


def test_a_converted_model_another_user_keeps_to_itself_is_converted_again(unprivileged, clips, colour_model):
    """A cache folder shared with another user (DFSCAN_CACHE_DIR): their converted model is not ours to read or
    replace; the scan converts its own and says so (it was an internal error, exit 3)."""
    import shutil

    run, base, owner = unprivileged
    cache = base / "shared-cache"
    first = subprocess.run([sys.executable, "-m", "dfscan", "scan", str(clips["fake_mp4"]), "--model",
                            str(colour_model), "--no-store", "-q", "--csv", str(base / "first.csv")],
                           capture_output=True, text=True, env=dict(os.environ, DFSCAN_CACHE_DIR=str(cache)), timeout=300)
    assert first.returncode == 1, first.stderr[-2000:]
    [entry] = (cache / "openvino").glob("*/model.xml")  # the other user's conversion
    for path in cache.rglob("*"):  # private, as dfscan leaves its cache; the folder itself is shared
        keep_to(owner, path, 0o700 if path.is_dir() else 0o600)
    os.chmod(cache, 0o777)
    model = base / colour_model.name
    shutil.copy(colour_model, model)
    os.chmod(model, 0o644)
    proc = run(["scan", str(clips["fake_mp4"]), "--model", str(model), "--no-store", "--csv", str(base / "out.csv")],
               DFSCAN_CACHE_DIR=str(cache))
    assert proc.returncode == 1, proc.stderr[-3000:]  # FAKE: scored
    assert "cannot be read" in proc.stderr and entry.exists()
