"""`dfscan scan` around the library's scan loop: what an early stop or a failure mid-scan leaves on disk."""
import json

import pytest

from dfscan.cli import main
from dfscan.common.errors import DfscanError
from dfscan.scanning.pipeline import ScanPlan, Scanner


@pytest.fixture
def two_videos(clips, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("fake_mp4", "real_avi"):
        (folder / clips[name].name).write_bytes(clips[name].read_bytes())
    return folder


def args(colour_model, folder, tmp_path):
    return ["scan", str(folder), "--model", str(colour_model), "--no-store", "--csv", str(tmp_path / "r.csv"),
            "--jsonl", str(tmp_path / "r.jsonl")]


def test_ctrl_c_before_the_scan_begins_leaves_nothing(two_videos, colour_model, tmp_path, monkeypatch, capsys):
    def discover(self, paths, *progress):
        raise KeyboardInterrupt

    monkeypatch.setattr(ScanPlan, "discover", discover)
    assert main(args(colour_model, two_videos, tmp_path)) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "of 0 videos" not in err  # no hint about rows: there are none
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # the live CSV and the new JSONL are gone


def test_a_failure_mid_scan_keeps_the_rows_written_so_far(two_videos, colour_model, tmp_path, monkeypatch, capsys):
    scan = Scanner.iter_scan

    def iter_scan(self, found):
        for result in scan(self, found):
            yield result
            raise DfscanError("the cluster went away")

    monkeypatch.setattr(Scanner, "iter_scan", iter_scan)
    assert main(args(colour_model, two_videos, tmp_path)) == 2
    assert "the cluster went away" in capsys.readouterr().err
    rows = (tmp_path / "r.csv.partial").read_text().splitlines()
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(rows) == 2 and len(lines) == 1 and json.loads(lines[0])["path"] in rows[1]
    assert not (tmp_path / "r.csv").exists()
