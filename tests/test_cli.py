import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_in_fresh_process
from dfscan.cli import main
from dfscan.report import CSV_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run_cli(*args, cwd=None):
    """The real command in a fresh process, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dfscan", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


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
    assert "--engine ray needs Ray, which is not installed: pip install 'dfscan[ray]'" in err
    assert "Traceback" not in err and not out.exists()
