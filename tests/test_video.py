import re

import numpy as np
import pytest

from conftest import H264, frames_for, write_ffmpeg, write_opencv
from dfscan.decode import container, read as video
from dfscan.decode import frames, source
from dfscan.common.errors import VideoError
from dfscan.decode.read import REFERENCE_FRAMES, FrameSpec, read_frames, spread_indices


def level(i: int) -> int:
    """Grey level that identifies frame i (neighbours differ by 37)."""
    return (i * 37) % 200 + 25


def numbered_frames(n: int, size=(96, 64)):
    w, h = size
    return [np.full((h, w, 3), level(i), np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def numbered_h264(tmp_path_factory):
    """H.264 with B-frames and a long GOP, like DFDC clips: seeking must still be exact."""
    return write_ffmpeg(tmp_path_factory.mktemp("v") / "numbered.mp4", numbered_frames(300), H264)


def test_parse_frame_specs():
    assert FrameSpec.parse("0:271:30").indices == REFERENCE_FRAMES
    assert FrameSpec.parse(":100:25").indices == (0, 25, 50, 75)
    assert FrameSpec.parse("30, 0,60,30").indices == (0, 30, 60)
    for bad in ["", "a:b", "10:5", "0:", "1;2"]:
        with pytest.raises(ValueError):
            FrameSpec.parse(bad)
    assert FrameSpec().describe() == "0:271:30"


def test_resolve_keeps_reference_frames_and_spreads_over_short_clips():
    spec = FrameSpec()
    assert spec.resolve(300) == REFERENCE_FRAMES
    assert spec.resolve(271) == REFERENCE_FRAMES
    short = spec.resolve(24)
    assert len(short) == 10 and short[0] == 0 and short[-1] == 23 and list(short) == sorted(set(short))
    assert spec.resolve(4) == (0, 1, 2, 3)
    assert spec.resolve(0) == ()
    assert FrameSpec.spread(5).resolve(1001) == (0, 250, 500, 750, 1000)
    assert spread_indices(1, 10) == (0,)


@pytest.mark.parametrize("backend", ["pyav", "decord", "opencv"])
def test_decoded_frames_are_exactly_the_ones_asked_for(numbered_h264, backend):
    clip = read_frames(numbered_h264, FrameSpec(), backend)
    assert clip.indices == REFERENCE_FRAMES
    assert clip.backend == backend
    assert clip.total_frames == 300 and clip.fps == pytest.approx(30, abs=0.01)
    assert (clip.width, clip.height) == (96, 64)
    for i, frame in zip(clip.indices, clip.frames):
        assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - level(i)) < 4, f"frame {i} is not the frame asked for"


def test_short_clip_gets_frames_spread_over_its_length(tmp_path):
    path = write_opencv(tmp_path / "short.avi", numbered_frames(24), "MJPG")
    clip = read_frames(path, FrameSpec())
    assert len(clip.indices) == 10 and clip.indices[-1] == 23
    for i, frame in zip(clip.indices, clip.frames):
        assert abs(float(frame.mean()) - level(i)) < 4


def test_falls_back_to_the_next_decoder(numbered_h264, monkeypatch):
    def broken(path, spec, threads, keep):
        raise VideoError("cannot open")

    monkeypatch.setitem(video._BACKENDS, "pyav", broken)
    assert read_frames(numbered_h264, FrameSpec()).backend == "decord"
    monkeypatch.setitem(video._BACKENDS, "decord", broken)
    clip = read_frames(numbered_h264, FrameSpec())
    assert clip.backend == "opencv"
    assert clip.indices == REFERENCE_FRAMES
    assert clip.notes == ["decoded with opencv (pyav: cannot open; decord: cannot open)"]


def test_the_three_decoders_agree_pixel_for_pixel_with_any_thread_count(numbered_h264, tmp_path):
    from conftest import frames_for

    textured = write_ffmpeg(tmp_path / "t.mp4", frames_for(300, tint="red"), H264)
    for path in (numbered_h264, textured):
        clips = [read_frames(path, FrameSpec(), b, threads) for b in ("pyav", "decord", "opencv") for threads in (0, 1, 3)]
        for other in clips[1:]:
            assert other.indices == clips[0].indices
            assert all(np.array_equal(a, b) for a, b in zip(clips[0].frames, other.frames))


@pytest.mark.parametrize("content, reason", [
    (b"", "not a video format FFmpeg recognises"),
    (b"\x00\x01garbage" * 1000, "not a video format FFmpeg recognises"),
    (b"just some text\n" * 10, "a text file, not a video"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image, not a video"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x10\x00mdat" + bytes(64), "truncated"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x10free" + bytes(8),
     "index (moov box) is missing"),
])
def test_unreadable_file_raises_a_clear_video_error(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=re.escape(reason)):
        read_frames(path, FrameSpec())


def test_decord_messages_lose_source_paths():
    exc = RuntimeError("[22:09:33] /src/video/x.cc:292: [22:09:33] /src/y.cc:218: Check failed: boom")
    assert container.decoder_message(exc) == "Check failed: boom"


def test_stream_without_a_frame_count_is_counted_then_read_from_the_start(tmp_path, monkeypatch):
    path = write_opencv(tmp_path / "n.avi", numbered_frames(50), "MJPG")
    import cv2

    real = cv2.VideoCapture

    class NoCount:  # what OpenCV reports for many WebM files: no usable frame count
        def __init__(self, p):
            self._cap = real(p)

        def get(self, prop):
            return -2.79e17 if prop == cv2.CAP_PROP_FRAME_COUNT else self._cap.get(prop)

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", NoCount)
    clip = read_frames(path, FrameSpec(), "opencv")
    assert clip.total_frames == 50 and len(clip.indices) == 10
    for i, frame in zip(clip.indices, clip.frames):
        assert abs(float(frame.mean()) - level(i)) < 4


def test_pyav_counts_frames_when_the_header_has_no_count(tmp_path):
    from conftest import VP9

    path = write_ffmpeg(tmp_path / "n.webm", numbered_frames(24), VP9)  # WebM headers carry no frame count
    clip = read_frames(path, FrameSpec(), "pyav")
    assert clip.total_frames == 24 and len(clip.indices) == 10 and clip.indices[-1] == 23
    for i, frame in zip(clip.indices, clip.frames):
        assert abs(float(frame.mean()) - level(i)) < 4


@pytest.mark.parametrize("backend", ["pyav", "decord", "opencv"])
def test_keep_gets_each_frame_as_it_is_decoded_and_the_clip_holds_what_it_returns(numbered_h264, backend):
    seen = []

    def keep(frame):
        seen.append(frame.shape)
        return round(float(frame.mean()))

    clip = read_frames(numbered_h264, FrameSpec(), backend, keep=keep)
    assert seen == [(64, 96, 3)] * len(REFERENCE_FRAMES)
    assert [abs(v - level(i)) < 4 for i, v in zip(clip.indices, clip.frames)] == [True] * len(REFERENCE_FRAMES)
    assert (clip.width, clip.height) == (96, 64)


def test_a_failing_keep_is_not_blamed_on_the_decoder(numbered_h264):
    calls = []

    def keep(frame):
        calls.append(1)
        raise RuntimeError("detector broke")

    with pytest.raises(video.KeepError, match="RuntimeError: detector broke"):
        read_frames(numbered_h264, FrameSpec(), keep=keep)
    assert calls == [1]  # no other decoder was tried on the same frames


def test_files_over_the_limits_are_refused_before_decoding(numbered_h264, tmp_path, monkeypatch):
    monkeypatch.setattr(container, "MAX_FRAME_PIXELS", 96 * 64 - 1)
    with pytest.raises(VideoError, match="frames of 96x64 pixels"):
        read_frames(numbered_h264, FrameSpec(), "decord")  # checked whatever the decoder
    monkeypatch.undo()
    monkeypatch.setattr(frames, "MAX_FRAMES", 299)
    for backend in ("pyav", "decord", "opencv"):
        with pytest.raises(VideoError, match="claims 300 frames"):
            read_frames(numbered_h264, FrameSpec(), backend)


def test_mp4_boxes_are_walked_in_a_stream_and_within_a_bound(tmp_path, monkeypatch):
    ftyp = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    path = tmp_path / "boxes.mp4"
    path.write_bytes(ftyp + b"\x00\x00\x00\x08free" * 3000)
    monkeypatch.setattr(container, "MAX_MP4_BOXES", 2000)
    with pytest.raises(VideoError, match="more than 2,000 top-level MP4 boxes"):
        read_frames(path, FrameSpec())
    monkeypatch.setattr(container, "MAX_MP4_BOXES", 5000)  # under the bound: the index check says what is wrong
    with pytest.raises(VideoError, match="moov box"):
        read_frames(path, FrameSpec())
    with open(path, "rb") as fh:
        boxes = container._mp4_boxes(fh, path.stat().st_size)
        assert not isinstance(boxes, (list, tuple)) and next(boxes) == (b"ftyp", 24)


@pytest.mark.parametrize("head, reason", [
    (b"ffconcat version 1.0\nfile x.mp4\n", "an FFmpeg concat script"),
    (b"\xef\xbb\xbfffconcat version 1.0\nfile x.mp4\n", "an FFmpeg concat script"),
    (b"#EXTM3U\n#EXTINF:1,\nx.ts\n", "an M3U/HLS playlist"),
])
def test_playlists_and_concat_scripts_are_not_videos(tmp_path, head, reason):
    path = tmp_path / "list.mp4"
    path.write_bytes(head)
    with pytest.raises(VideoError, match=reason):
        read_frames(path, FrameSpec())


def test_only_the_containers_of_real_videos_are_opened(tmp_path):
    import subprocess

    import imageio_ffmpeg

    song = tmp_path / "song.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=duration=1", "-f", "wav", str(song)], check=True)
    with pytest.raises(VideoError, match="not a video container dfscan reads"):
        read_frames(song, FrameSpec())
    assert "concat" not in container.CONTAINERS and "hls" not in container.CONTAINERS
    assert container._AV_OPTIONS["protocol_whitelist"] == "file"


def test_a_relative_name_is_never_read_as_an_ffmpeg_protocol(numbered_h264, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(numbered_h264, tmp_path / "subfile:x.mp4")
    for backend in ("pyav", "decord", "opencv"):
        assert read_frames("subfile:x.mp4", FrameSpec.parse("0"), backend).width == 96


@pytest.mark.parametrize("backend", ["auto", "pyav", "decord", "opencv"])
def test_each_read_opens_the_file_with_pyav_once(numbered_h264, backend, monkeypatch):
    import av

    real, opened = av.open, []
    monkeypatch.setattr(av, "open", lambda *a, **kw: opened.append(a[0]) or real(*a, **kw))
    clip = read_frames(numbered_h264, FrameSpec(), backend)
    assert opened == [str(numbered_h264)]  # the check's open is the one PyAV decodes from
    assert clip.indices == REFERENCE_FRAMES and all(abs(float(f.mean()) - level(i)) < 4
                                                    for i, f in zip(clip.indices, clip.frames))


def ffmpeg_copy(src, dst, *args, inputs=()) -> None:
    """Put a clip's stream (and those of `inputs`), unchanged, into another container."""
    import subprocess

    import imageio_ffmpeg

    more = [a for path in inputs for a in ("-i", str(path))]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "fatal", "-i", str(src), *more,
                    "-c", "copy", *args, str(dst)], check=True)


@pytest.fixture(scope="module")
def flv_and_mpeg_ps(numbered_h264, tmp_path_factory):
    """(MP4, the same stream in FLV), (MP4, the same MPEG-2 or MPEG-1 stream with B-frames in MPEG-PS)."""
    d = tmp_path_factory.mktemp("formats")
    rng = np.random.default_rng(0)  # noise: every frame fills its own MPEG-PS packet, as in real files
    noisy = [np.clip(f.astype(np.int16) + rng.integers(-20, 21, f.shape), 0, 255).astype(np.uint8)
             for f in numbered_frames(300, size=(320, 240))]
    mpeg2 = write_ffmpeg(d / "numbered_mpeg2.mp4", noisy, ["-c:v", "mpeg2video", "-q:v", "2", "-bf", "2", "-g", "60"])
    ffmpeg_copy(numbered_h264, d / "numbered.flv")
    # MPEG-1 written straight into MPEG-PS: FFmpeg places its frames' stamps right only once its
    # probing decoder has seen the stream (without it, 90 of 300 frames of such a clip collided).
    mpeg1 = write_ffmpeg(d / "face_mpeg1.mp4", frames_for(300), ["-c:v", "mpeg1video", "-q:v", "3"])
    write_ffmpeg(d / "face1.mpg", frames_for(300), ["-c:v", "mpeg1video", "-q:v", "3"])  # the same encoding
    ffmpeg_copy(mpeg2, d / "numbered.mpg")
    return {"flv": (numbered_h264, d / "numbered.flv"), "mpeg-ps": (mpeg2, d / "numbered.mpg"),
            "mpeg-1-ps": (mpeg1, d / "face1.mpg")}


@pytest.mark.parametrize("kind", ["flv", "mpeg-ps", "mpeg-1-ps", "mpeg-ps-after-junk"])
def test_flv_and_mpeg_ps_decode_to_the_frames_of_the_mp4_they_came_from(flv_and_mpeg_ps, kind, tmp_path,
                                                                        monkeypatch):
    import av

    mp4, other = flv_and_mpeg_ps[kind.removesuffix("-after-junk")]
    if kind.endswith("-after-junk"):  # no pack header first: only PyAV's refusal of stream_options tells
        other = tmp_path / "junk.mpg"
        other.write_bytes(b"\x00" * 7 + b"junk" * 40 + flv_and_mpeg_ps["mpeg-ps"][1].read_bytes())
    want = read_frames(mp4, FrameSpec())
    real, opened = av.open, []
    monkeypatch.setattr(av, "open", lambda *a, **kw: opened.append(kw) or real(*a, **kw))
    got = read_frames(other, FrameSpec())
    # Streams found while probing: the first open that succeeds probes them with no decoder
    assert next(kw for kw in opened if "stream_options" not in kw)["options"]["codec_whitelist"] == container._NO_CODEC
    assert got.backend == "pyav" and not got.notes, got.notes  # no fallback: PyAV itself reads them
    assert got.indices == want.indices == REFERENCE_FRAMES and got.total_frames == 300
    assert all(np.array_equal(a, b) for a, b in zip(got.frames, want.frames))
    if kind != "mpeg-1-ps":
        assert all(abs(float(f.mean()) - level(i)) < 4 for i, f in zip(got.indices, got.frames))


def test_a_raw_stream_without_timestamps_is_read_in_order_by_the_other_decoders(numbered_h264, tmp_path):
    raw = tmp_path / "numbered.h264"
    ffmpeg_copy(numbered_h264, raw)
    clip = read_frames(raw, FrameSpec())
    assert clip.backend == "opencv" and "pyav: no timestamps in the stream" in clip.notes[0]
    assert clip.indices == REFERENCE_FRAMES and all(abs(float(f.mean()) - level(i)) < 4
                                                    for i, f in zip(clip.indices, clip.frames))


def test_mpeg_ps_frames_with_guessed_timestamps_are_not_read_by_rank(numbered_h264, tmp_path):
    # Tiny frames share an MPEG-PS packet; FFmpeg guesses the stamps of all but the first, and with
    # B-frames the guesses collide: ranking them picked frame 61 for frame 60.
    mpeg2 = write_ffmpeg(tmp_path / "tiny.mp4", numbered_frames(300), ["-c:v", "mpeg2video", "-bf", "2"])
    ffmpeg_copy(mpeg2, tmp_path / "tiny.mpg")
    with pytest.raises(VideoError, match="frames share a timestamp"):
        read_frames(tmp_path / "tiny.mpg", FrameSpec(), "pyav")
    clip = read_frames(tmp_path / "tiny.mpg", FrameSpec())  # decord, seeking by those stamps, gave frame 61 too
    assert clip.backend == "opencv" and "decord: not tried" in clip.notes[0]
    assert clip.indices == REFERENCE_FRAMES and all(abs(float(f.mean()) - level(i)) < 4
                                                    for i, f in zip(clip.indices, clip.frames))


def test_a_pyav_without_stream_options_probes_every_file_without_decoders_first(numbered_h264, tmp_path,
                                                                                  monkeypatch):
    import av

    real, opened = av.open, []

    def old_pyav(*args, **kwargs):
        if "stream_options" in kwargs:
            raise TypeError("open() got an unexpected keyword argument 'stream_options'")
        opened.append(kwargs["options"].get("codec_whitelist"))
        return real(*args, **kwargs)

    monkeypatch.setattr(av, "open", old_pyav)
    clip = read_frames(numbered_h264, FrameSpec())
    assert clip.backend == "pyav"
    assert all(abs(float(f.mean()) - level(i)) < 4 for i, f in zip(clip.indices, clip.frames))
    assert opened == [container._NO_CODEC, None]  # checked without decoders, then opened to be read
    monkeypatch.setattr(container, "MAX_FRAME_PIXELS", 96 * 64 - 1)
    with pytest.raises(VideoError, match="frames of 96x64 pixels"):
        read_frames(numbered_h264, FrameSpec())


def test_an_older_pyav_that_drops_stream_options_still_checks_flv_and_mpeg_ps_without_decoders(flv_and_mpeg_ps,
                                                                                              monkeypatch):
    import av

    real, opened = av.open, []

    def older_pyav(*args, **kwargs):  # PyAV before 18 handed those options to no decoder, without a word
        kwargs.pop("stream_options", None)
        opened.append(kwargs["options"].get("codec_whitelist"))
        return real(*args, **kwargs)

    monkeypatch.setattr(av, "open", older_pyav)
    for kind in ("flv", "mpeg-ps"):
        opened.clear()
        assert read_frames(flv_and_mpeg_ps[kind][1], FrameSpec()).backend == "pyav"
        assert opened[0] == container._NO_CODEC, kind


def test_an_flv_whose_frame_size_only_a_decoder_knows_is_refused(numbered_h264, tmp_path):
    sorenson = tmp_path / "flash.flv"  # Sorenson H.263: no parser reads its size, only a decoder would
    ffmpeg_copy(numbered_h264, sorenson, "-c:v", "flv1")
    with pytest.raises(VideoError, match="frame size is not in the stream's headers"):
        read_frames(sorenson, FrameSpec())


def test_every_video_stream_is_within_the_frame_limit(numbered_h264, tmp_path, monkeypatch):
    larger = write_ffmpeg(tmp_path / "larger.mp4", numbered_frames(30, size=(128, 96)), H264)
    both = tmp_path / "both.mkv"  # decord and OpenCV may pick the second, larger stream
    ffmpeg_copy(numbered_h264, both, "-map", "0:v", "-map", "1:v", inputs=[larger])
    monkeypatch.setattr(container, "MAX_FRAME_PIXELS", 96 * 64)
    with pytest.raises(VideoError, match="frames of 128x96 pixels"):
        read_frames(both, FrameSpec())


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """Files whose frames grow part-way: 30 frames of 96x64 (all open_checked sees), then 30 of 192x128.

    Tests set the limit just above 96x64 so that they stay small; test_hostile.py scans real 16000x16000 ones."""
    import subprocess

    import imageio_ffmpeg

    d = tmp_path_factory.mktemp("grown")
    made = {}
    fast = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    # probe.ts: after only two small frames, OpenCV's probe takes the large size for the whole stream
    for name, args, small in (("mjpeg.avi", ["-c:v", "mjpeg"], 30), ("h264.ts", H264, 30), ("probe.ts", fast, 2)):
        parts = [write_ffmpeg(d / f"{size[0]}-{name}", numbered_frames(n, size), args)
                 for n, size in ((small, (96, 64)), (30, (192, 128)))]
        if name.endswith(".ts"):  # MPEG-TS streams concatenate as bytes
            (d / name).write_bytes(b"".join(p.read_bytes() for p in parts))
        else:
            (d / "list.txt").write_text("".join(f"file '{p.name}'\n" for p in parts))
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                            "-i", str(d / "list.txt"), "-c", "copy", str(d / name)], check=True)
        made[name] = d / name
    return made


@pytest.fixture
def limit_96x64(monkeypatch):
    for module in (container, video):  # FFmpeg counts 96x64 as 128x64: it aligns widths to 64 bytes
        monkeypatch.setattr(module, "MAX_FRAME_PIXELS", 128 * 96)


@pytest.mark.parametrize("backend", ["auto", "decord", "opencv"])
@pytest.mark.parametrize("name", ["mjpeg.avi", "h264.ts"])
def test_frames_that_grow_past_the_limit_are_refused_whatever_the_decoder(grown, name, backend, limit_96x64):
    with pytest.raises(container.FrameTooLarge, match=r"a frame larger than the 8K limit at frame 30\b"):
        read_frames(grown[name], FrameSpec(), backend)


def test_when_pyav_stops_on_the_limit_no_other_decoder_is_tried(grown, limit_96x64, monkeypatch):
    tried = []
    for name in ("decord", "opencv"):
        monkeypatch.setitem(video._BACKENDS, name, lambda *a, name=name: tried.append(name))
    with pytest.raises(container.FrameTooLarge, match="at frame 30"):
        read_frames(grown["mjpeg.avi"], FrameSpec(), "pyav")
    with pytest.raises(container.FrameTooLarge, match="at frame 30"):
        read_frames(grown["mjpeg.avi"], FrameSpec())
    assert tried == []


@pytest.mark.parametrize("backend", ["opencv"])  # decord never gets MPEG-TS (test_decode_hostile.py)
def test_a_frame_over_the_limit_is_refused_before_it_is_kept_even_past_the_size_check(grown, backend, limit_96x64,
                                                                                      monkeypatch):
    monkeypatch.setattr(source, "check_frame_sizes", lambda *a: None)  # as for a size change between keyframes
    kept = []  # both give every frame at the size their probe found: here the large one
    with pytest.raises(container.FrameTooLarge, match=r"at frame 0 \(192x128\)"):
        read_frames(grown["probe.ts"], FrameSpec(), backend, keep=lambda f: kept.append(f.shape))
    assert kept == []
