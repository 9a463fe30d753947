import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_in_fresh_process
from dfscan.cli import main
from dfscan.reports.writers import CSV_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run_cli(*args, cwd=None, columns: int | None = None):
    """The real command in a fresh process, as a user runs it (its report `columns` wide, if given)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **({"COLUMNS": str(columns)} if columns else {})}
    return subprocess.run([sys.executable, "-m", "dfscan", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300, stdin=subprocess.DEVNULL)  # a script: no terminal


def test_help_and_version_do_not_import_tensorflow():
    done = cli_in_fresh_process([["--version"], ["scan", "--help"]],
                                ("tensorflow", "keras", "cv2", "decord", "numpy", "ray"))
    assert done.returncode == 0, done.stderr
    assert "Usage: dfscan scan" in done.stdout and "--num-frames" in done.stdout


def test_end_to_end_scan_writes_csv_table_and_exit_1_for_a_fake(clips, colour_model, tmp_path):
    out = tmp_path / "report.csv"
    done = run_cli("scan", clips["root"], "--model", colour_model, "--csv", out)
    assert done.returncode == 1, done.stderr
    rows = read_csv(out)
    assert tuple(rows[0]) == CSV_COLUMNS
    verdicts = {Path(r["path"]).name: r["verdict"] for r in rows}
    assert verdicts == {"fake_red.mp4": "FAKE", "real_blue.avi": "REAL", "short_blue.webm": "REAL",
                        "fake_h264.MP4": "FAKE", "no_face.mp4": "NO_FACE"}
    fake = next(r for r in rows if r["path"].endswith("fake_red.mp4"))
    assert float(fake["score"]) > 0.9 and fake["frames_sampled"] == "10" and fake["faces_scored"] == "10"
    assert fake["frame_indices"] == "0 30 60 90 120 150 180 210 240 270" and len(fake["sha256"]) == 64
    noface = next(r for r in rows if r["verdict"] == "NO_FACE")
    assert noface["score"] == "" and noface["error"] == ""
    # the table (stdout): most suspicious first, then the summary
    assert done.stdout.index("FAKE") < done.stdout.index("REAL") < done.stdout.index("NO_FACE")
    assert "FAKE: 2" in done.stdout and "videos/s" in done.stdout
    assert "Traceback" not in done.stderr and "cuInit" not in done.stderr


@pytest.fixture
def real_only(clips, tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    (folder / "a.avi").write_bytes(clips["real_avi"].read_bytes())
    return folder


def test_exit_0_when_nothing_is_fake_and_default_csv_lands_in_cwd(real_only, colour_model, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["scan", str(real_only), "--model", str(colour_model)]) == 0
    (report,) = tmp_path.glob("dfscan-report-*.csv")
    assert [r["verdict"] for r in read_csv(report)] == ["REAL"]
    assert str(report.name) in capsys.readouterr().out.replace("\n", "")


def test_existing_csv_is_never_overwritten_unless_asked(real_only, colour_model, tmp_path, capsys):
    out = tmp_path / "mine.csv"
    out.write_text("precious")
    assert main(["scan", str(real_only), "--model", str(colour_model), "--csv", str(out)]) == 2
    assert out.read_text() == "precious" and "--overwrite" in capsys.readouterr().err
    assert main(["scan", str(real_only), "--model", str(colour_model), "--csv", str(out), "--overwrite"]) == 0
    assert read_csv(out)[0]["verdict"] == "REAL"


def test_file_errors_are_rows_and_only_strict_changes_the_exit(real_only, colour_model, tmp_path, capsys):
    (real_only / "zero.mp4").write_bytes(b"")
    out = tmp_path / "r.csv"
    assert main(["scan", str(real_only), "--model", str(colour_model), "--csv", str(out), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # --quiet: only errors, on stderr
    assert f"ERROR {real_only / 'zero.mp4'}: empty file (0 bytes)" in captured.err.splitlines()
    rows = {Path(r["path"]).name: r for r in read_csv(out)}
    assert rows["zero.mp4"]["verdict"] == "ERROR" and rows["zero.mp4"]["score"] == ""
    assert rows["zero.mp4"]["error"] == "empty file (0 bytes)" and rows["a.avi"]["verdict"] == "REAL"
    assert main(["scan", str(real_only), "--model", str(colour_model), "--csv", str(out), "--overwrite",
                 "--strict", "-q"]) == 2


def test_model_that_cannot_be_loaded_exits_2_with_a_message(real_only, tmp_path, capsys):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    assert main(["scan", str(real_only), "--model", str(bad), "--csv", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "dfscan: error: cannot load the model" in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def test_usage_errors_exit_2(real_only, colour_model, capsys):
    assert main(["scan", str(real_only), "--frames", "0:10", "--num-frames", "3", "--model", str(colour_model)]) == 2
    assert "either --frames or --num-frames" in capsys.readouterr().err
    assert main(["scan", str(real_only), "--frames", "ten"]) == 2
    err = capsys.readouterr().err  # the message, not only the code: an unreachable default model exits 2 too
    assert "--frames" in err and "'ten'" in err
    assert main(["scan"]) == 2
    assert "give at least one PATH, or --from-file LIST" in capsys.readouterr().err
    assert main(["scan", str(real_only), "--threshold", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--threshold" in err and "Traceback" not in err
    assert main(["scan", "--from-file", str(real_only / "no-such-list.txt")]) == 2
    err = capsys.readouterr().err
    assert "--from-file" in err and "no-such-list.txt" in err and "No such file" in err
    assert main(["scan", str(real_only), "--address", "auto", "--model", str(colour_model)]) == 2
    assert "--address and --actors need --engine ray" in capsys.readouterr().err


def test_frames_option_reaches_the_scan(real_only, colour_model, tmp_path):
    out = tmp_path / "f.csv"
    main(["scan", str(real_only), "--model", str(colour_model), "--csv", str(out), "--frames", "0,5,10", "-q"])
    assert read_csv(out)[0]["frame_indices"] == "0 5 10"


def test_from_file_takes_a_queue_on_stdin_or_in_a_file(clips, colour_model, tmp_path, monkeypatch):
    listing = f"# today's queue\n\n{clips['real_avi']}\n   \n{clips['fake_mp4']}\r\n  # done\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(listing.encode())))
    out = tmp_path / "stdin.csv"
    args = ["--model", str(colour_model), "--no-store", "-q"]
    assert main(["scan", "--from-file", "-", "--csv", str(out), *args]) == 1
    assert [Path(r["path"]).name for r in read_csv(out)] == ["real_blue.avi", "fake_red.mp4"]
    queue = tmp_path / "queue.txt"
    queue.write_text(listing)
    out = tmp_path / "file.csv"
    # PATH arguments first, then the list; a video named twice is scanned once
    assert main(["scan", str(clips["short_webm"]), str(clips["fake_mp4"]), "--from-file", str(queue),
                 "--csv", str(out), *args]) == 1
    assert [Path(r["path"]).name for r in read_csv(out)] == ["short_blue.webm", "fake_red.mp4", "real_blue.avi"]


def test_an_empty_queue_is_a_clean_scan(colour_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"# nothing today\n")))
    out = tmp_path / "empty.csv"
    assert main(["scan", "--from-file", "-", "--model", str(colour_model), "--no-store", "--csv", str(out)]) == 0
    assert read_csv(out) == [] and "no video files found in an empty list" in capsys.readouterr().err


def test_ray_engine_without_ray_says_how_to_install_it(real_only, colour_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does without the extra
    out = tmp_path / "x.csv"
    assert main(["scan", str(real_only), "--engine", "ray", "--model", str(colour_model), "--csv", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--engine ray needs Ray, which is not installed: pip install '.[ray]' in dfscan's folder" in err
    assert "Traceback" not in err and not out.exists()


# --- a journalist's first hour (issue 16) and writing only where asked (issue 17) ----------------------------

def scan_args(colour_model, *more):
    return ["scan", *map(str, more), "--model", str(colour_model)]


def test_a_mistyped_path_exits_2_before_anything_is_written(real_only, colour_model, tmp_path):
    out = tmp_path / "r.csv"
    done = run_cli(*scan_args(colour_model, real_only, tmp_path / "nope", "--csv", out, "--no-store"))
    assert done.returncode == 2, done.stderr
    assert "no such file or folder" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))  # tests/test_first_run.py has the rest


def test_the_summary_says_what_a_verdict_means_and_reads_well(real_only, colour_model, tmp_path):
    done = run_cli(*scan_args(colour_model, real_only, "--csv", tmp_path / "r.csv", "--no-store"))
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "A FAKE verdict is a reason to look closer, not proof; a REAL verdict does not clear a video." in text
    # "1 videos" is wrong, but a rate such as "(1.81 videos/s)" is not
    assert "1 video in" in text and not re.search(r"(?<![\d.])1 videos", text) and "threshold: 0.5" in text
    assert "results not kept (--no-store)" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli(*scan_args(colour_model, empty, "--csv", tmp_path / "e.csv", "--no-store"))
    assert done.returncode == 0 and "threshold: None" not in done.stdout and "threshold: 0.5" in done.stdout


def test_reused_results_are_counted_marked_and_the_store_is_named(clips, colour_model, tmp_path):
    import json

    store = tmp_path / "data" / "results.sqlite"
    common = ["--store", store, "--no-recursive"]
    first = run_cli(*scan_args(colour_model, clips["root"], "--csv", tmp_path / "1.csv", *common))
    assert first.returncode == 1, first.stderr
    text = " ".join(first.stdout.split())
    assert "0 reused from the result store (scanned before), 3 scanned now" in text
    assert f"results kept in {store}" in text
    rows1 = read_csv(tmp_path / "1.csv")
    assert {r["reused"] for r in rows1} == {"no"} and all(r["scanned_at"] for r in rows1)
    # wide enough that no note under a video's name wraps (a seen-before line comes before the reuse note)
    again = run_cli(*scan_args(colour_model, clips["root"], "--csv", tmp_path / "2.csv", "--json",
                               tmp_path / "2.json", "--jsonl", tmp_path / "2.jsonl", *common), columns=400)
    assert again.returncode == 1, again.stderr
    text = " ".join(again.stdout.split())
    assert "3 reused from the result store (scanned before), 0 scanned now" in text
    assert text.count("reused (scanned ") == 3  # each row of the table says so
    rows2 = read_csv(tmp_path / "2.csv")
    assert {r["reused"] for r in rows2} == {"yes"}
    assert [r["scanned_at"] for r in rows2] == [r["scanned_at"] for r in rows1]  # when it was first computed
    doc = json.loads((tmp_path / "2.json").read_text())
    assert [v["reused"] for v in doc["videos"]] == [True] * 3
    assert [json.loads(line)["reused"] for line in (tmp_path / "2.jsonl").read_text().splitlines()] == [True] * 3


def test_the_table_shows_whole_names_relative_to_the_folder(clips, colour_model, tmp_path):
    folder = tmp_path / "a-rather-long-folder-name-that-would-eat-the-table" / "inbox"
    folder.mkdir(parents=True)
    long_name = "dfdc__abofeumbvv_interview_with_the_minister_2026-11-30_take3.mp4"
    (folder / long_name).write_bytes(clips["fake_mp4"].read_bytes())
    (folder / "b.mp4").write_bytes(clips["real_avi"].read_bytes())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "dfscan", *scan_args(colour_model, folder, "--csv", tmp_path / "r.csv",
                                                                      "--no-store")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(long_name in line for line in lines)  # never broken across lines
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert table and max(map(len, table)) <= 80  # the table fits; long text lines are left to the terminal
    rows = [line for line in lines if "FAKE" in line or "REAL" in line][:2]
    assert rows and not any(str(folder) in line for line in rows)  # relative to the folder scanned
    assert "Reason / notes" not in done.stdout  # no column without content
    assert {r["path"] for r in read_csv(tmp_path / "r.csv")} == {str(folder / long_name), str(folder / "b.mp4")}


def test_an_internal_error_never_reads_as_a_finding(real_only, colour_model, tmp_path, monkeypatch, capsys):
    import dfscan.reports.writers

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(dfscan.reports.writers, "results_table", broken)
    assert main(scan_args(colour_model, real_only, "--csv", tmp_path / "r.csv", "--no-store")) == 3
    err = capsys.readouterr().err
    assert "dfscan: internal error: RuntimeError: a bug" in err and "not a finding" in err


def test_a_scan_piped_into_head_keeps_its_status(real_only, colour_model, tmp_path):
    out = tmp_path / "r.csv"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before dfscan prints: every write to stdout fails (EPIPE)
    try:
        done = subprocess.run([sys.executable, "-m", "dfscan", *scan_args(colour_model, real_only, "--csv", out,
                                                                          "--no-store")],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr  # nothing FAKE: not 1, and no crash
    assert "Traceback" not in done.stderr and read_csv(out)[0]["verdict"] == "REAL"


def test_a_planted_link_never_redirects_a_report(real_only, colour_model, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "report.csv.partial").symlink_to(victim)
    assert main(scan_args(colour_model, real_only, "--csv", tmp_path / "report.csv", "--no-store")) == 2
    assert victim.read_text() == "precious" and not (tmp_path / "report.csv").exists()
    assert "does not write through it" in capsys.readouterr().err
    (tmp_path / "out.jsonl").symlink_to(victim)
    assert main(scan_args(colour_model, real_only, "--csv", tmp_path / "b.csv", "--jsonl", tmp_path / "out.jsonl",
                          "--no-store")) == 2
    assert victim.read_text() == "precious"


def test_a_report_named_like_another_outputs_partial_file_is_refused(real_only, colour_model, tmp_path, capsys):
    jsonl = tmp_path / "a.csv.partial"
    assert main(scan_args(colour_model, real_only, "--jsonl", jsonl, "--csv", tmp_path / "a.csv", "--no-store")) == 2
    assert "would be written twice" in capsys.readouterr().err
    assert not jsonl.exists() and not (tmp_path / "a.csv").exists()


@pytest.mark.parametrize("fmt", ["--json", "--html", "--dfdc", "--csv", "--jsonl"])
def test_an_output_that_cannot_be_written_stops_the_scan_before_it_starts(real_only, colour_model, tmp_path, fmt):
    bad = [tmp_path / "no-such-folder" / "r.out", tmp_path / ("x" * 250 + ".out")]
    for target in bad:
        done = run_cli(*scan_args(colour_model, real_only, fmt, target, "--csv" if fmt != "--csv" else "--json",
                                  tmp_path / "other.out", "--no-store"))
        assert done.returncode == 2, done.stderr
        assert "dfscan: error: cannot write" in done.stderr and "Traceback" not in done.stderr
        assert "loading the model" not in done.stderr  # refused before any work
        assert list(tmp_path.glob("*.partial")) == [] and not (tmp_path / "other.out").exists()


def test_a_report_that_fails_late_keeps_what_was_written_and_says_so(real_only, colour_model, tmp_path, capsys,
                                                                    monkeypatch):
    import errno

    from dfscan.reports import writers as report

    def disk_full(_report):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(report.WRITERS, "json", disk_full)
    out = tmp_path / "r.csv"
    assert main(scan_args(colour_model, real_only, "--csv", out, "--json", tmp_path / "r.json", "--no-store")) == 2
    captured = capsys.readouterr()
    assert "cannot write" in captured.err and "No space left on device" in captured.err
    assert read_csv(out)[0]["verdict"] == "REAL" and not (tmp_path / "r.json").exists()
    assert "CSV:" in captured.out and "JSON:" not in captured.out  # the summary names only what was written


@pytest.mark.parametrize("kind", ["not sqlite", "parent is a file", "corrupted"])
def test_a_broken_store_never_costs_the_scan(clips, colour_model, tmp_path, kind):
    if kind == "not sqlite":
        store = tmp_path / "results.sqlite"
        store.write_text("these are my notes, not a database\n" * 50)
    elif kind == "parent is a file":
        (tmp_path / "file").write_text("x")
        store = tmp_path / "file" / "results.sqlite"
    else:
        store = tmp_path / "results.sqlite"
        run_cli(*scan_args(colour_model, clips["fake_mp4"], "--store", store, "--csv", tmp_path / "0.csv"))
        data = bytearray(store.read_bytes())
        data[100:4096] = b"\xff" * (4096 - 100)  # the first page's b-tree: every query now fails
        store.write_bytes(bytes(data))
    before = store.read_bytes() if store.is_file() else None
    out = tmp_path / "r.csv"
    done = run_cli(*scan_args(colour_model, clips["fake_mp4"], clips["real_avi"], "--store", store, "--csv", out))
    assert done.returncode == 1, done.stderr  # the verdicts, not an ERROR row per video
    assert [r["verdict"] for r in read_csv(out)] == ["FAKE", "REAL"]
    assert "cannot be used" in done.stderr and "Traceback" not in done.stderr
    assert "results not kept" in " ".join(done.stdout.split())
    if before is not None:
        assert store.read_bytes() == before  # left as it was, for the user to look at


def test_a_file_name_that_is_not_utf8_is_a_row_with_the_name_escaped(clips, colour_model, tmp_path):
    import json
    import sqlite3

    folder = tmp_path / "shared"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9-interview.mp4"  # Latin-1 from an old shared drive
    with open(raw, "wb") as fh:
        fh.write(clips["fake_mp4"].read_bytes())
    store = tmp_path / "s.sqlite"
    out = tmp_path / "r.csv"
    done = run_cli(*scan_args(colour_model, folder, "--csv", out, "--json", tmp_path / "r.json", "--jsonl",
                              tmp_path / "r.jsonl", "--store", store))
    assert done.returncode == 1, done.stderr
    escaped = str(folder) + "/caf\\xe9-interview.mp4"
    assert [(r["path"], r["verdict"]) for r in read_csv(out)] == [(escaped, "FAKE")]
    assert json.loads((tmp_path / "r.json").read_text())["videos"][0]["path"] == escaped
    assert json.loads((tmp_path / "r.jsonl").read_text())["path"] == escaped
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT path FROM results").fetchall() == [(escaped,)]
    assert "caf\\xe9-interview.mp4" in done.stdout


def test_the_store_is_private_and_keeps_no_faces(clips, colour_model, tmp_path, monkeypatch):
    import sqlite3
    import stat

    store = tmp_path / "new" / "dfscan" / "results.sqlite"
    done = run_cli(*scan_args(colour_model, clips["fake_mp4"], "--store", store, "--csv", tmp_path / "r.csv",
                              "--html", tmp_path / "r.html"))
    assert done.returncode == 1, done.stderr
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.parent.parent.stat().st_mode) == 0o700
    with sqlite3.connect(store) as db:  # the WAL and shared-memory files SQLite makes beside it
        db.execute("SELECT COUNT(*) FROM results").fetchall()
        for suffix in ("-wal", "-shm"):
            side = Path(str(store) + suffix)
            assert side.exists() and stat.S_IMODE(side.stat().st_mode) == 0o600, suffix
        (text,) = db.execute("SELECT result FROM results").fetchone()
    assert "thumbnail_jpeg" not in text and "_jpeg" not in text
    assert (tmp_path / "r.html").read_text().count("src='data:image/jpeg") >= 10  # the report has them


def test_store_info_forget_and_clear(clips, colour_model, tmp_path):
    store = tmp_path / "s.sqlite"
    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("a.mp4", "b.avi"):
        (folder / name).write_bytes((clips["fake_mp4"] if name == "a.mp4" else clips["real_avi"]).read_bytes())
    assert run_cli(*scan_args(colour_model, folder, "--store", store, "--csv", tmp_path / "r.csv")).returncode == 1
    info = run_cli("store", "--store", store, "info")
    assert info.returncode == 0, info.stderr
    assert f"result store: {store}" in info.stdout and "2 results of 2 files" in info.stdout
    assert "no face images" in info.stdout and "converted models" in info.stdout
    from dfscan.classifier.pins import pins_path

    assert f"model pins (each hub model's SHA-256 at its first use): {pins_path()}" in info.stdout
    forget = run_cli("store", "--store", store, "forget", folder / "a.mp4")
    assert forget.returncode == 0 and "forgot 1 result " in forget.stdout
    assert b"a.mp4" not in store.read_bytes()  # gone from the file, not only from the table
    assert "1 result of 1 file," in run_cli("store", "--store", store, "info").stdout
    cleared = run_cli("store", "--store", store, "clear")
    assert cleared.returncode == 0 and not store.exists() and not Path(str(store) + "-wal").exists()


def test_help_lists_whole_descriptions_and_every_exit_code():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    top = subprocess.run([sys.executable, "-m", "dfscan", "--help"], capture_output=True, text=True, env=env)
    text = " ".join(top.stdout.split())
    assert "or videos (end to end)." in text
    assert not any(line.rstrip().endswith("...") for line in top.stdout.splitlines()[1:])  # none cut short
    scan_help = subprocess.run([sys.executable, "-m", "dfscan", "scan", "--help"], capture_output=True, text=True,
                               env=env).stdout
    assert "130" in scan_help and "internal error" in scan_help and "not proof" in scan_help


def test_other_commands_with_a_closed_stdout_exit_141_not_1():
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "dfscan", "store", "info"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write_end)
    assert done.returncode == 141 and "Traceback" not in done.stderr
