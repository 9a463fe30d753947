"""Seen before and people's labels (dfscan/queue): re-encoded and resized copies made with ffmpeg
match their original, an unrelated clip does not; labels follow content across a rename; label
--list; evaluate --from-store; store forget removes the queue's rows."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import imageio_ffmpeg
import pytest

from conftest import H264, frames_for, write_ffmpeg
from dfscan.api import scan
from dfscan.cli import main
from dfscan.scanning.pipeline import ScanConfig
from dfscan.queue.fingerprint import band_keys, similarity
from dfscan.reports.writers import CSV_COLUMNS, CSV_SCHEMA


def _ffmpeg(src, dst, *args) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), *args, str(dst)],
                   check=True)


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    original = write_ffmpeg(root / "original.mp4", frames_for(300, tint="red", seed=7), H264)
    _ffmpeg(original, root / "reencoded.mp4", "-c:v", "libx264", "-crf", "36", "-preset", "veryfast")
    _ffmpeg(original, root / "resized.mp4", "-vf", "scale=320:240", "-c:v", "libx264", "-preset", "veryfast")
    # The synthetic clips differ mostly in their faint backgrounds: the same face on the same path looks the
    # same to any perceptual hash. The unrelated clip's face moves along the mirrored path.
    write_ffmpeg(root / "unrelated.mp4", (f[:, ::-1] for f in frames_for(300, tint="red", seed=8)), H264)
    return root


def _config(model, store) -> ScanConfig:
    return ScanConfig(model=str(model), store=str(store), workers=2)


def test_copies_match_and_an_unrelated_clip_does_not(variants, colour_model, tmp_path):
    store = tmp_path / "s.sqlite"
    first = scan([variants / "original.mp4"], _config(colour_model, store)).results[0]
    assert first.seen_before is None
    later = {r.path.name: r for r in scan([variants / n for n in ("reencoded.mp4", "resized.mp4", "unrelated.mp4")],
                                          _config(colour_model, store)).results}
    for name in ("reencoded.mp4", "resized.mp4"):
        seen = later[name].seen_before
        assert seen is not None, name
        assert seen["sha256"] == first.sha256 and seen["path"].endswith("original.mp4")
        assert seen["verdict"] == first.verdict.value and seen["similarity"] >= 0.5
    assert later["unrelated.mp4"].seen_before is None


def test_similarity_and_band_keys():
    h = 0x0F0F_3C3C_A5A5_5A5A
    assert band_keys([h]) == sorted({(b << 16) | ((h >> (16 * b)) & 0xFFFF) for b in range(4)})
    assert band_keys([0]) == []  # a uniform frame is not indexed
    assert similarity([h, h ^ 0xFF], [h ^ 0b111], 3) == 0.5


def test_labels_follow_content_across_a_rename_and_copies(variants, colour_model, tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((variants / "original.mp4").read_bytes())
    scan([clip], _config(colour_model, store))
    assert main(["label", str(clip), "--as", "real", "--note", "=checked by desk", "--store", str(store)]) == 0
    renamed = clip.rename(tmp_path / "renamed.mp4")
    csv_path = tmp_path / "r.csv"
    assert main(["scan", str(renamed), str(variants / "reencoded.mp4"), "--model", str(colour_model), "--store",
                 str(store), "--csv", str(csv_path), "--html", str(tmp_path / "r.html"), "--quiet"]) == 1
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(csv_path.open(encoding="utf-8"))}
    assert rows["renamed.mp4"]["human_label"] == "REAL"
    assert rows["renamed.mp4"]["human_note"] == "'=checked by desk"  # neutralised, as every cell
    assert rows["renamed.mp4"]["seen_before_path"].endswith("clip.mp4")  # the same bytes under another name
    assert rows["reencoded.mp4"]["seen_before_label"] == "REAL"  # carried across the match
    assert rows["reencoded.mp4"]["human_label"] == "REAL"
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<b>Human label:</b> REAL: =checked by desk" in html
    assert "<b>Seen before</b>" in html
    assert list(rows["renamed.mp4"])[-1] == "schema" and rows["renamed.mp4"]["schema"] == str(CSV_SCHEMA)
    capsys.readouterr()
    assert main(["label", "--list", "--store", str(store)]) == 0
    listed = capsys.readouterr().out
    assert "REAL" in listed and "clip.mp4" in listed and "checked by desk" in listed
    main(["scan", str(renamed), "--model", str(colour_model), "--store", str(store), "--csv", str(tmp_path / "t.csv")])
    table = "".join(capsys.readouterr().out.split())  # the terminal table, its lines folded at any width
    assert "humanlabelREAL(=checkedbydesk)" in table and "seenbeforeas" in table


def test_csv_columns_keep_their_order():
    assert CSV_COLUMNS.index("creation_time") < CSV_COLUMNS.index("seen_before_sha256")
    assert CSV_COLUMNS.index("human_note") < CSV_COLUMNS.index("schema") == len(CSV_COLUMNS) - 1


def test_evaluate_from_store(variants, colour_model, tmp_path, capsys):
    pytest.importorskip("sklearn")
    store = tmp_path / "s.sqlite"
    fakes = [variants / "original.mp4", variants / "unrelated.mp4"]
    real = tmp_path / "blue.mp4"
    write_ffmpeg(real, frames_for(60, tint="blue", seed=9), H264)
    scan([*fakes, real], _config(colour_model, store))
    assert main(["label", *map(str, fakes), "--as", "FAKE", "--store", str(store)]) == 0
    assert main(["label", str(real), "--as", "REAL", "--store", str(store)]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--from-store", "--store", str(store), "--model", str(colour_model), "-o", str(out),
                 "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["videos"]["scored"] == 3 and metrics["video_level"]["accuracy"] == 1.0


def test_forget_removes_fingerprints_and_labels(variants, colour_model, tmp_path):
    import sqlite3

    store = tmp_path / "s.sqlite"
    name = tmp_path / "caf\udce9.mp4" if sys.platform != "win32" else tmp_path / "cafe.mp4"  # not valid UTF-8
    name.write_bytes((variants / "original.mp4").read_bytes())
    scan([name], _config(colour_model, store))
    assert main(["label", str(name), "--as", "FAKE", "--store", str(store)]) == 0
    assert main(["store", "--store", str(store), "forget", str(name)]) == 0
    db = sqlite3.connect(store)
    for table in ("results", "fingerprints", "fingerprint_bands", "labels"):
        assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table


def test_the_watch_queue_is_bounded_and_waits_for_files_open_for_writing(tmp_path):
    from dfscan.watch.watcher import Pending, open_for_writing

    pending = Pending(limit=3)
    for i in range(5):
        pending.add(str(tmp_path / f"{i}.mp4"))
    assert len(pending) == 3 and pending.overflow  # the rest is found by a walk once the queue drains
    path = tmp_path / "upload.mp4"
    with open(path, "wb") as fh:
        fh.write(b"x" * 100)
        fh.flush()
        if sys.platform.startswith("linux"):
            assert open_for_writing({str(path)}) == {str(path)}
    assert open_for_writing({str(path)}) == set()
