"""Issue 27, decoding: no hang, the right stream, limits before FFmpeg. Each file is made here with ffmpeg."""
from __future__ import annotations

import csv
import os
import subprocess

import numpy as np
import pytest

from conftest import H264, frames_for, write_ffmpeg
from dfscan.cli import main
from dfscan.decode.container import LimitExceeded
from dfscan.common.errors import VideoError
from dfscan.decode.read import FrameSpec, read_frames


def level(i: int) -> int:
    """Grey level that identifies frame i (neighbours differ by 37)."""
    return (i * 37) % 200 + 25


def numbered(n: int, size=(96, 64), fixed: int | None = None):
    w, h = size
    return [np.full((h, w, 3), level(i) if fixed is None else fixed, np.uint8) for i in range(n)]


def ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def levels(clip) -> list[int]:
    return [round(float(f.mean())) for f in clip.frames]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode-hostile")
    x264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast"]
    write_ffmpeg(d / "full.mp4", numbered(300), [*x264, "-sc_threshold", "0", "-bf", "2"])  # one keyframe per 250
    ffmpeg("-ss", "6.667", "-i", d / "full.mp4", "-c", "copy", d / "cut.mp4")  # an edit list hides ~200 packets
    write_ffmpeg(d / "bframes.ts", numbered(300), [*x264, "-bf", "3"])
    write_ffmpeg(d / "decoy.mp4", numbered(300, (64, 48), fixed=240), x264)
    write_ffmpeg(d / "real.mp4", numbered(300), H264)
    write_ffmpeg(d / "poster.mp4", numbered(1, fixed=240), x264)
    for name, first in (("decoy.mp4", "decoy.mp4"), ("decoy.mkv", "decoy.mp4"), ("poster.mkv", "poster.mp4")):
        ffmpeg("-i", d / first, "-i", d / "real.mp4", "-map", "0:v", "-map", "1:v", "-c", "copy", d / f"two-{name}")
    write_ffmpeg(d / "raw.mp4", numbered(600), [*x264, "-f", "h264"])  # a raw H.264 stream named .mp4
    return d


def shown(path) -> list[int]:
    """The grey levels of the frames a player shows (FFmpeg's own decode, which honours edit lists)."""
    import av

    with av.open(str(path)) as c:
        return [round(float(f.to_ndarray(format="rgb24").mean())) for f in c.decode(c.streams.video[0])]


@pytest.mark.parametrize("backend", ["auto", "pyav", "opencv"])
def test_a_lossless_trim_gives_the_frames_a_player_shows(made, backend):
    player = shown(made / "cut.mp4")
    assert 90 <= len(player) <= 110  # the 100 frames after 6.667 s, not the 300 packets the file holds
    clip = read_frames(made / "cut.mp4", FrameSpec(), backend, timeout=60)
    assert clip.total_frames == len(player)
    assert all(abs(got - player[i]) <= 3 for i, got in zip(clip.indices, levels(clip)))


def test_decord_never_gets_a_file_whose_edit_list_hides_frames(made):
    with pytest.raises(VideoError, match="edit list hides frames"):
        read_frames(made / "cut.mp4", FrameSpec(), "decord", timeout=60)


def test_mpeg_ts_with_b_frames_finishes_under_every_decoder_choice(made):
    spec = FrameSpec(indices=(0, 90, 180))
    clip = read_frames(made / "bframes.ts", spec, "auto", timeout=60)
    assert levels(clip) == pytest.approx([level(i) for i in spec.indices], abs=3)
    with pytest.raises(VideoError, match="decord is not used on this file"):  # its get_batch([180]) spun for good
        read_frames(made / "bframes.ts", spec, "decord", timeout=60)


def test_a_decoder_that_never_returns_is_killed_at_the_deadline_and_the_next_video_is_read(made, tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it waits for a writer that never comes: a real hang, in the worker
    with pytest.raises(VideoError, match=r"decoding did not finish in 2 s"):
        read_frames(fifo, FrameSpec(), timeout=2)
    assert read_frames(made / "real.mp4", FrameSpec(), timeout=60).total_frames == 300


def test_a_hanging_video_is_an_error_row_and_the_scan_goes_on(colour_model, tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a_hangs.mp4", "b_good.mp4"):
        write_ffmpeg(folder / name, frames_for(40, tint="red"), H264)
    monkeypatch.setenv("DFSCAN_TEST_SLOW_DECODE", "a_hangs.mp4")  # test-only: that worker sleeps an hour
    out = tmp_path / "r.csv"
    code = main(["scan", str(folder), "--model", str(colour_model), "--csv", str(out), "--no-store", "-q",
                 "--video-timeout", "3"])
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {os.path.basename(r["path"]): r for r in csv.DictReader(fh)}
    assert rows["a_hangs.mp4"]["verdict"] == "ERROR"
    assert "decoding did not finish in 3 s" in rows["a_hangs.mp4"]["error"]
    assert rows["b_good.mp4"]["verdict"] == "FAKE" and code in (1, 3)


@pytest.mark.parametrize("name", ["two-decoy.mp4", "two-decoy.mkv", "two-poster.mkv"])
@pytest.mark.parametrize("backend", ["auto", "pyav", "decord", "opencv"])
def test_every_decoder_judges_the_stream_a_player_shows(made, name, backend):
    clip = read_frames(made / name, FrameSpec(), backend, timeout=60)
    assert (clip.width, clip.height, clip.total_frames) == (96, 64, 300)  # not the decoy, nor the poster
    assert levels(clip) == pytest.approx([level(i) for i in clip.indices], abs=3)
    assert any("2 video streams: judged stream 1" in note for note in clip.notes)


def test_a_raw_h264_stream_is_counted_from_its_packets_not_by_decoding_it(made, monkeypatch):
    import cv2

    real, grabs = cv2.VideoCapture, []

    class Counting:  # OpenCV reports no frame count for raw streams: count what it is made to decode
        def __init__(self, *args):
            self._cap = real(*args)

        def grab(self):
            grabs.append(1)
            return self._cap.grab()

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", Counting)
    clip = read_frames(made / "raw.mp4", FrameSpec())
    assert clip.total_frames == 600 and clip.backend == "opencv"
    assert levels(clip) == pytest.approx([level(i) for i in clip.indices], abs=3)
    assert len(grabs) <= clip.indices[-1] + 1  # only up to the last wanted frame, once


def test_a_sample_table_claiming_89_million_frames_is_refused_before_ffmpeg_opens_it(made, tmp_path, monkeypatch):
    import av

    data = bytearray((made / "real.mp4").read_bytes())
    at = data.find(b"stsz") + 4  # version and flags, sample size, sample count
    data[at + 4:at + 12] = (1000).to_bytes(4, "big") + (89_000_000).to_bytes(4, "big")  # one constant size
    crafted = tmp_path / "claims.mp4"
    crafted.write_bytes(bytes(data))

    def never(*args, **kwargs):
        raise AssertionError("FFmpeg opened the file")

    monkeypatch.setattr(av, "open", never)
    with pytest.raises(LimitExceeded, match="sample table claims 89,000,000 frames"):
        read_frames(crafted, FrameSpec())


def test_a_failing_keep_in_the_scan_process_is_not_blamed_on_the_decoder(made):
    from dfscan.decode.read import KeepError

    def keep(frame):
        raise RuntimeError("detector broke")

    with pytest.raises(KeepError, match="RuntimeError: detector broke"):
        read_frames(made / "real.mp4", FrameSpec(), keep=keep, timeout=60)
    assert read_frames(made / "real.mp4", FrameSpec(), timeout=60).total_frames == 300  # a fresh worker


def test_a_file_the_worker_refuses_leaves_the_worker_in_service(made, tmp_path):
    from dfscan.decode import worker

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(VideoError, match="a text file, not a video"):
        read_frames(text, FrameSpec(), timeout=60)
    pids = [w.process.pid for w in worker._idle]
    assert read_frames(made / "real.mp4", FrameSpec(), timeout=60).total_frames == 300
    assert [w.process.pid for w in worker._idle] == pids  # the same worker, not a new one


def test_past_the_frame_limit_no_other_decoder_opens_the_file(made, monkeypatch):
    from dfscan.decode import frames, source

    ffmpeg("-i", made / "real.mp4", "-c", "copy", made / "real.mkv")  # Matroska: no sample table to check first
    tried = []
    for name in ("decord", "opencv"):
        monkeypatch.setitem(source._BACKENDS, name, lambda *a, name=name: tried.append(name))
    monkeypatch.setattr(frames, "MAX_FRAMES", 299)
    with pytest.raises(LimitExceeded, match=r"^the stream claims 300 frames"):
        read_frames(made / "real.mkv", FrameSpec())
    assert tried == []


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="limits are read from Linux's /proc")
def test_a_decoding_worker_may_not_reserve_more_than_its_memory_cap(made):
    from dfscan.decode import worker

    read_frames(made / "real.mp4", FrameSpec(), timeout=60)
    with open(f"/proc/{worker._idle[-1].process.pid}/limits") as fh:
        line = next(line for line in fh if line.startswith("Max address space"))
    assert int(line.split()[3]) == worker.WORKER_MEMORY  # soft limit, bytes


def test_the_default_deadline_grows_with_the_frames_asked_and_their_size():
    from dfscan.decode.worker import default_timeout

    assert default_timeout(10) == pytest.approx(60.5)  # 60 s + 0.05 s per full-HD frame
    assert default_timeout(10, 3840, 2160) == pytest.approx(62.0)  # a 4K frame counts as four
    assert default_timeout(10, 640, 480) == default_timeout(10)  # smaller frames get no less


def test_a_scan_judges_the_real_stream_behind_a_decoy_and_says_so(colour_model, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    decoy = write_ffmpeg(tmp_path / "decoy.mp4", frames_for(40, size=(240, 180), tint="blue"), H264)  # REAL
    real = write_ffmpeg(tmp_path / "real.mp4", frames_for(40, tint="red", seed=5), H264)  # FAKE
    ffmpeg("-i", decoy, "-i", real, "-map", "0:v", "-map", "1:v", "-c", "copy", folder / "two.mkv")
    out = tmp_path / "r.csv"
    main(["scan", str(folder), "--model", str(colour_model), "--csv", str(out), "--no-store", "-q"])
    with open(out, newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["verdict"] == "FAKE" and "2 video streams: judged stream 1" in row["notes"]
