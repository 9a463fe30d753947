"""Links (dfscan/sources/links.py): fetched with yt-dlp from a loopback server the test starts (a direct
.mp4, a redirect, an HLS playlist, a 404, a stall, a redirect to file://), never from the internet."""
from __future__ import annotations

import csv
import json
import os
import stat
import subprocess

import pytest

pytest.importorskip("yt_dlp")

from conftest import frames_for  # noqa: E402
from sources_helpers import LoopbackServer, redirect, stall  # noqa: E402

from dfscan.cli import main  # noqa: E402
from dfscan.classifier.model_info import file_sha256  # noqa: E402
from dfscan.sources.links import LinkConfig, fetch, is_link  # noqa: E402


@pytest.fixture(scope="module")
def site(clips, tmp_path_factory):
    """A loopback site: /fake.mp4 (the red H.264 clip), /go (302 to it), /hls/clip.m3u8, /stall, /local."""
    import imageio_ffmpeg

    root = tmp_path_factory.mktemp("site")
    (root / "fake.mp4").write_bytes(clips["fake_h264"].read_bytes())
    (root / "hls").mkdir()
    raw = b"".join(f.tobytes() for f in frames_for(90, tint="red", seed=7))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
                    "rgb24", "-s", "480x360", "-r", "30", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-g", "30", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
                    str(root / "hls" / "clip.m3u8")], input=raw, check=True)
    server = LoopbackServer(root)
    server.routes.update({"/go": redirect("/fake.mp4"), "/stall": stall(30),
                          "/local": redirect("file:///etc/passwd")})
    yield server
    server.close()


def test_only_urls_are_links():
    assert is_link("https://example.org/v.mp4") and is_link("file:///etc/passwd")
    assert not is_link("videos/clip.mp4") and not is_link("C:\\clips\\a.mp4")


def test_a_direct_link_is_kept_in_a_private_folder_named_by_its_content(site, tmp_path):
    media = tmp_path / "media"
    origin = fetch(site.url("/fake.mp4"), LinkConfig(media_dir=str(media)))
    assert origin.error is None
    kept = media / os.path.basename(origin.path)
    assert kept.read_bytes() == (site.httpd.root / "fake.mp4").read_bytes()
    assert stat.S_IMODE(media.stat().st_mode) == 0o700
    assert kept.name.startswith(file_sha256(kept)[:16])
    assert origin.extractor == "Generic" and origin.fetched_at.endswith("Z")
    again = fetch(site.url("/go"), LinkConfig(media_dir=str(media)))
    assert again.path == origin.path  # the same bytes: the file already kept, not a second copy
    assert again.final_url == site.url("/fake.mp4") and again.source_url == site.url("/go")
    records = (media / (kept.name + ".fetches.jsonl")).read_text().splitlines()
    assert [json.loads(line)["source_url"] for line in records] == [site.url("/fake.mp4"), site.url("/go")]
    assert not [p for p in media.iterdir() if p.name.startswith(".fetching")]


def test_an_hls_playlist_is_fetched_whole(site, tmp_path):
    origin = fetch(site.url("/hls/clip.m3u8"), LinkConfig(media_dir=str(tmp_path)))
    assert origin.error is None, origin.error
    import av

    with av.open(origin.path) as container:
        assert container.streams.video[0].frames in (0, 90) and container.duration / 1e6 > 2.5


@pytest.mark.parametrize("path, words, config", [
    ("/missing.mp4", "404", {}),
    ("/stall", "timed out", {"timeout_s": 1.0}),
    ("/local", "local file", {}),
    ("/fake.mp4", "larger than --max-download", {"max_bytes": 1000}),
])
def test_a_link_that_fails_says_why_in_one_line(site, tmp_path, path, words, config):
    origin = fetch(site.url(path), LinkConfig(media_dir=str(tmp_path), **config))
    assert origin.error and words in origin.error and "\n" not in origin.error
    assert origin.path is None and not [p for p in tmp_path.iterdir() if p.is_file()]


def test_other_schemes_are_never_fetched(tmp_path):
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x.mp4"):
        origin = fetch(url, LinkConfig(media_dir=str(tmp_path)))
        assert origin.error and "only http and https" in origin.error


def test_offline_refuses_links_before_the_model_is_loaded(site, capsys, tmp_path):
    code = main(["scan", site.url("/fake.mp4"), "--offline", "--model", str(tmp_path / "absent.keras")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--offline" in err and "absent.keras" not in err


def test_links_are_scanned_like_files_and_a_second_scan_reuses_the_result(site, clips, colour_model, tmp_path,
                                                                          capsys):
    media, store = tmp_path / "media", tmp_path / "store.sqlite"
    links = tmp_path / "links.txt"
    links.write_text(f"{site.url('/go')}\n{site.url('/missing.mp4')}\n")
    args = ["scan", "--from-file", str(links), str(clips["real_avi"]), "--model", str(colour_model),
            "--media-dir", str(media), "--store", str(store), "--overwrite"]
    assert main([*args, "--csv", str(tmp_path / "a.csv"), "--json", str(tmp_path / "a.json")]) == 1
    table = capsys.readouterr().out  # the row names the link; its kept file goes under it
    assert site.url("/go") in table and "saved as" in table and "led to" in table
    rows = {r["source_url"]: r for r in csv.DictReader(open(tmp_path / "a.csv", encoding="utf-8"))}
    fetched, missing, local = rows[site.url("/go")], rows[site.url("/missing.mp4")], rows[""]
    assert fetched["verdict"] == "FAKE" and fetched["final_url"] == site.url("/fake.mp4")
    assert fetched["sha256"] == file_sha256(clips["fake_h264"]) and fetched["extractor"] == "Generic"
    assert fetched["path"].startswith(str(media)) and fetched["reused"] == "no"
    assert missing["verdict"] == "ERROR" and "404" in missing["error"] and missing["path"] == site.url("/missing.mp4")
    assert local["verdict"] == "REAL"
    video = next(v for v in json.load(open(tmp_path / "a.json"))["videos"] if v["source_url"] == site.url("/go"))
    assert video["site"]["title"] == "fake" and video["fetched_at"].endswith("Z")
    assert main([*args, "--csv", str(tmp_path / "b.csv")]) == 1
    again = {r["source_url"]: r for r in csv.DictReader(open(tmp_path / "b.csv", encoding="utf-8"))}
    assert again[site.url("/go")]["reused"] == "yes" and again[site.url("/go")]["verdict"] == "FAKE"
    assert again[site.url("/go")]["fetched_at"] >= fetched["fetched_at"]
    assert again[""]["source_url"] == ""  # a local file reused from the store carries no link


def test_help_imports_neither_yt_dlp_nor_c2pa():
    from conftest import cli_in_fresh_process

    done = cli_in_fresh_process([["scan", "--help"]], ("yt_dlp", "c2pa", "numpy"))
    assert done.returncode == 0, done.stderr
    assert "--max-download" in done.stdout and "--trust-anchors" in done.stdout


def test_cookies_are_sent_only_when_given(site, tmp_path):
    seen = []

    def record(h) -> None:
        seen.append(h.headers.get("Cookie"))
        redirect("/fake.mp4")(h)

    site.routes["/private"] = record
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tsecret42\n")
    assert fetch(site.url("/private"), LinkConfig(media_dir=str(tmp_path / "a"))).error is None
    without, seen[:] = list(seen), []
    assert fetch(site.url("/private"), LinkConfig(media_dir=str(tmp_path / "b"), cookies=str(jar))).error is None
    assert without and not any(without)
    assert any("secret42" in (c or "") for c in seen)


def test_discovery_fetches_links_after_the_files_and_reports_download_progress(site, clips, colour_model, tmp_path):
    from dfscan.scanning.pipeline import ScanConfig, ScanPlan

    heard = []
    with ScanPlan(ScanConfig(model=str(colour_model), links=LinkConfig(media_dir=str(tmp_path)))) as plan:
        found = plan.discover([site.url("/fake.mp4"), clips["real_avi"]], lambda *a: heard.append(a))
    assert [f.path for f in found][0] == clips["real_avi"] and found[0].origin is None
    assert found[1].origin.source_url == site.url("/fake.mp4") and found[1].error is None
    size = clips["fake_h264"].stat().st_size
    assert heard and heard[-1] == (site.url("/fake.mp4"), size, size)
    with ScanPlan(ScanConfig(model=str(colour_model), offline=True)) as plan:
        with pytest.raises(Exception, match="offline"):
            plan.discover([site.url("/fake.mp4")])
