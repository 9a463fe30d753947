"""Container facts (dfscan/sources/facts.py), read from clips made here with the ffmpeg binary imageio-ffmpeg
ships: tags, rotation, variable frame rate, durations that disagree, the re-encoding hint."""
from __future__ import annotations

import subprocess

import av
import pytest

from dfscan.sources.facts import container_facts, reencoding_hint
from dfscan.decode.read import FrameSpec, read_frames


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("facts")
    src = "testsrc=size=160x120:rate=30:duration=3"
    ffmpeg("-f", "lavfi", "-i", src, "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-c:a", "aac",
           "-metadata", "make=Apple", "-metadata", "model=iPhone 15", "-metadata", "creation_time=2026-01-02T03:04:05Z",
           "-movflags", "use_metadata_tags", str(d / "phone.mov"))
    ffmpeg("-display_rotation", "90", "-i", str(d / "phone.mov"), "-c", "copy", str(d / "turned.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=4", "-vf",
           "setpts='if(lt(N,60),N,60+(N-60)*3)/30/TB'", "-fps_mode", "vfr", "-c:v", "libx264", str(d / "vfr.mp4"))
    ffmpeg("-f", "lavfi", "-i", src, "-c:v", "libx264", str(d / "cfr.mp4"))
    return d


def facts_of(path) -> dict:
    with av.open(str(path)) as container:
        return container_facts(container)


def test_tags_device_and_durations(made):
    f = facts_of(made / "phone.mov")
    assert f["make"] == "Apple" and f["model"] == "iPhone 15"
    assert f["creation_time"].startswith("2026-01-02T03:04:05")
    assert f["encoder"].startswith("Lavf") and f["handler"] == "VideoHandler"
    assert f["video_duration_s"] == pytest.approx(3.0, abs=0.1) and f["audio_duration_s"] == pytest.approx(1.0, abs=0.1)
    assert f["durations_disagree"] is True
    assert "FFmpeg" in f["reencoding_hint"]
    assert f["rotation"] == 0


def test_rotation_from_the_display_matrix(made):
    assert facts_of(made / "turned.mp4")["rotation"] == 90


def test_a_variable_frame_rate_is_told_from_a_constant_one(made):
    assert facts_of(made / "vfr.mp4")["variable_frame_rate"] is True
    assert facts_of(made / "cfr.mp4")["variable_frame_rate"] is False
    assert "durations_disagree" not in facts_of(made / "cfr.mp4")  # no audio: nothing to compare


def test_the_hint_names_known_tools_only():
    assert "HandBrake" in reencoding_hint("HandBrake 1.6.1 2023012300")
    assert "Premiere" in reencoding_hint(None, "Adobe Premiere Pro 2024")
    assert reencoding_hint("Core Media Video", None) is None


def test_read_frames_hands_the_container_it_decoded_from(made, clips):
    seen = []

    def inspect(container):
        seen.append(container)
        return container_facts(container)

    clip = read_frames(made / "turned.mp4", FrameSpec(), inspect=inspect)
    assert clip.facts["rotation"] == 90 and len(clip.frames) == len(clip.indices)
    assert len(seen) == 1 and seen[0].name.endswith("turned.mp4")
    for decoder in ("decord", "opencv"):  # the other decoders: the container open_checked opened
        assert read_frames(clips["fake_h264"], FrameSpec(), decoder, inspect=container_facts).facts["encoder"]
