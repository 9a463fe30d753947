"""What a newsroom folder holds: broken files, odd codecs, phone videos, hostile names.

Every input gets a row with a verdict, ERROR rows a one-line reason, and the scan goes on.
"""
import csv
import os
import subprocess

import cv2
import numpy as np
import pytest

from conftest import H264, frames_for, write_ffmpeg, write_opencv
from dfscan.cli import main
from dfscan.report import restore

HOSTILE_NAMES = ["with space.mp4", "com,ma.mp4", "quo\"te's.mp4", "new\nline.mp4", "видео 東京.mp4",
                 "=cmd.mp4", "+sum.mp4", "-minus.mp4", "@at.mp4", "\x1b[31mred.mp4"]


def ffmpeg(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    good = write_ffmpeg(d / "good.mp4", frames_for(300, tint="red"), H264)
    data = good.read_bytes()
    (d / "zero.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index at the end: cut away
    fast = write_ffmpeg(d / "fast.tmp", frames_for(300, tint="red"), H264 + ["-movflags", "+faststart", "-f", "mp4"])
    (d / "truncated_faststart.mp4").write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    fast.unlink()
    (d / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    (d / "text.mp4").write_text("this is a text file\n" * 50)
    ok, jpg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    (d / "photo.mp4").write_bytes(jpg.tobytes())
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", d / "audio_only.mp4")
    (d / "folder.mp4").mkdir()
    write_opencv(d / "one_frame.avi", frames_for(1, tint="red"), "MJPG")
    write_opencv(d / "hundred.avi", frames_for(100, tint="blue"), "MJPG")
    write_ffmpeg(d / "uhd.mp4", frames_for(8, size=(3840, 2160), tint="red"), H264)
    upright = list(frames_for(60, size=(360, 480), tint="red"))
    stored = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in upright]  # a phone's sideways storage
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", "480x360", "-r", "30", "-i", "-", *H264, str(d / "portrait.mp4")]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in stored), check=True)
    write_ffmpeg(d / "vfr.mp4", frames_for(300, tint="blue"),
                 ["-vf", r"setpts=if(lt(N\,150)\,N/30\,5+(N-150)/10)/TB", "-fps_mode", "vfr", *H264])
    write_ffmpeg(d / "odd_size.mkv", frames_for(40, size=(321, 241), tint="red"),
                 ["-c:v", "mjpeg", "-pix_fmt", "yuvj444p"])
    write_ffmpeg(d / "ten_bit.mp4", frames_for(60, tint="red"), ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"])
    write_ffmpeg(d / "gray.mp4", frames_for(60), ["-c:v", "libx264", "-pix_fmt", "gray"])
    (d / "locked.mp4").write_bytes(data)
    os.symlink(d / "nowhere.mp4", d / "broken_link.mp4")
    os.symlink(d, d / "loop")
    for name in HOSTILE_NAMES:
        (d / name).write_bytes(data)
    return d, upright


@pytest.fixture(scope="module")
def scanned(corpus, colour_model, tmp_path_factory):
    import dfscan.pipeline as pipeline

    d, _ = corpus
    out = tmp_path_factory.mktemp("out") / "report.csv"
    real_sha = pipeline._sha256

    def unreadable(path):  # the tests run as root, who reads everything: simulate a locked file
        if path.name == "locked.mp4":
            raise PermissionError(13, "Permission denied", str(path))
        return real_sha(path)

    with pytest.MonkeyPatch.context() as patch:  # undone even if the scan fails
        patch.setattr(pipeline, "_sha256", unreadable)
        code = main(["scan", str(d), "--model", str(colour_model), "--csv", str(out), "--no-store", "-q"])
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {os.path.basename(restore(r["path"])): r for r in csv.DictReader(fh)}
    return code, rows, out


EXPECTED = {
    "zero.mp4": ("ERROR", "empty file (0 bytes)"),
    "truncated.mp4": ("ERROR", "the file is truncated"),
    "random.mp4": ("ERROR", "not a video format FFmpeg recognises"),
    "text.mp4": ("ERROR", "a text file, not a video"),
    "audio_only.mp4": ("ERROR", "no video stream in the file (audio only?)"),
    "photo.mp4": ("ERROR", "a JPEG image, not a video"),
    "folder.mp4": ("ERROR", "a folder, not a video file"),
    "locked.mp4": ("ERROR", "cannot read file: Permission denied"),
    "broken_link.mp4": ("ERROR", "broken symbolic link"),
    "loop": ("ERROR", "symbolic link loop"),
    "good.mp4": ("FAKE", ""),
    "one_frame.avi": ("FAKE", ""),
    "hundred.avi": ("REAL", ""),
    "uhd.mp4": ("FAKE", ""),
    "portrait.mp4": ("FAKE", ""),
    "vfr.mp4": ("REAL", ""),
    "odd_size.mkv": ("FAKE", ""),
    "ten_bit.mp4": ("FAKE", ""),
    "gray.mp4": ("REAL", ""),  # no colour: the colour model scores it 0.5, not above the threshold
    **{name: ("FAKE", "") for name in HOSTILE_NAMES},
}


def test_every_input_gets_a_row_and_the_scan_finishes(scanned):
    code, rows, _ = scanned
    assert code == 1  # FAKE found; per-file errors do not change the status
    missing = set(EXPECTED) - set(rows)
    assert not missing
    for name, (verdict, reason) in EXPECTED.items():
        row = rows[name]
        assert row["verdict"] == verdict, (name, row["verdict"], row["error"])
        if verdict == "ERROR":
            assert reason in row["error"] and "\n" not in row["error"] and len(row["error"]) < 200, (name, row)
            assert row["score"] == ""


def test_partial_and_odd_streams_are_sampled_honestly(scanned):
    _, rows, _ = scanned
    assert rows["one_frame.avi"]["frame_indices"] == "0"
    hundred = rows["hundred.avi"]["frame_indices"].split()
    assert len(hundred) == 10 and hundred[-1] == "99" and "spread" in rows["hundred.avi"]["notes"]
    assert rows["uhd.mp4"]["width"] == "3840" and rows["uhd.mp4"]["frames_with_face"] == "8"
    assert (rows["odd_size.mkv"]["width"], rows["odd_size.mkv"]["height"]) == ("321", "241")
    assert rows["vfr.mp4"]["frames_with_face"] == "10"
    cut = rows["truncated_faststart.mp4"]  # the first half still plays: judged on what is there
    assert cut["verdict"] in {"FAKE", "ERROR"} and int(cut["frames_sampled"] or 0) <= 10


def test_portrait_phone_clip_is_decoded_upright(corpus):
    from dfscan.video import FrameSpec, read_frames

    d, upright = corpus
    for backend in ("decord", "opencv"):
        clip = read_frames(d / "portrait.mp4", FrameSpec.parse("0,30"), backend)
        assert (clip.width, clip.height) == (360, 480)
        assert np.abs(clip.frames[0].astype(int) - upright[0]).mean() < 5, backend


def test_hostile_names_cannot_become_formulas_and_round_trip(scanned):
    import pandas as pd

    _, rows, out = scanned
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    for cell in raw["path"]:
        assert cell[0] not in "=+-@\t\r", cell
    names = {os.path.basename(restore(p)) for p in raw["path"]}
    assert set(HOSTILE_NAMES) <= names
    assert rows["=cmd.mp4"]["verdict"] == "FAKE"


def test_terminal_output_shows_control_characters_escaped(corpus, colour_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    d, _ = corpus
    code = main(["scan", str(d / "\x1b[31mred.mp4"), str(d / "new\nline.mp4"), "--model", str(colour_model),
                 "--csv", str(tmp_path / "r.csv"), "--no-store"])
    out = capsys.readouterr().out
    assert code == 1 and "\x1b" not in out and "\\x1b[31mred.mp4" in out and "new\\nline.mp4" in out
