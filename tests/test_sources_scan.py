"""Links, credentials and container facts through a whole scan: the result fields, the store (credentials are
read again on reuse, facts kept), the CSV's last columns, the terminal's C2PA column and the HTML section."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("c2pa")
pytest.importorskip("cryptography")

from sources_helpers import ThrowawayCA  # noqa: E402

from dfscan.cli import main  # noqa: E402
from dfscan.reports.writers import CSV_COLUMNS  # noqa: E402
from dfscan.results import Verdict, VideoResult  # noqa: E402

NEW_COLUMNS = ("source_url", "final_url", "extractor", "fetched_at", "provenance", "provenance_ai",
               "provenance_issuer", "provenance_generator", "encoder", "creation_time")


def test_new_csv_columns_come_last():
    # In their order, after every older column; later columns (docs/queues.md) only ever come after them.
    start = CSV_COLUMNS.index(NEW_COLUMNS[0])
    assert CSV_COLUMNS[start:start + len(NEW_COLUMNS)] == NEW_COLUMNS
    assert CSV_COLUMNS.index("covered_s") < start
    assert CSV_COLUMNS[:3] == ("path", "verdict", "score")


def test_the_new_fields_survive_the_store_form():
    r = VideoResult(path=Path("a.mp4"), verdict=Verdict.REAL, source_url="https://x/a",
                    final_url="https://y/a", extractor="Generic", fetched_at="2026-12-03T08:00:00Z",
                    site={"title": "t", "uploader_id": "u", "upload_date": "20261203"}, provenance="valid",
                    provenance_ai=True, provenance_issuer="I", provenance_generator="G 1",
                    provenance_history=("created",), provenance_reason=None, facts={"encoder": "Lavf", "rotation": 90})
    back = VideoResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r


def test_a_scan_reports_credentials_and_facts_and_reads_credentials_again_on_reuse(clips, colour_model, tmp_path,
                                                                                 capsys):
    ca = ThrowawayCA()
    signed = ca.sign(clips["fake_h264"], tmp_path / "generated.mp4")
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(ca.ca_pem)
    store = tmp_path / "store.sqlite"
    args = ["scan", str(signed), str(clips["real_avi"]), "--model", str(colour_model), "--store", str(store)]
    code = main([*args, "--trust-anchors", str(anchors), "--csv", str(tmp_path / "a.csv"),
                 "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html")])
    assert code == 1
    table = capsys.readouterr().out
    assert "C2PA" in table and "valid AI" in table
    rows = {r["path"]: r for r in csv.DictReader(open(tmp_path / "a.csv", encoding="utf-8"))}
    s, plain = rows[str(signed)], rows[str(clips["real_avi"])]
    # the verdict stays the model's
    assert (s["verdict"], s["provenance"], s["provenance_ai"]) == ("FAKE", "valid", "true")
    assert s["provenance_issuer"] == "dfscan test org" and s["provenance_generator"] == "TestVideoGen 1.0"
    assert s["encoder"].startswith("Lavf") and s["source_url"] == ""
    assert (plain["provenance"], plain["provenance_ai"]) == ("none", "")
    video = next(v for v in json.load(open(tmp_path / "a.json"))["videos"] if v["path"] == str(signed))
    assert video["provenance_history"] == ["created with TestVideoGen (made by generative AI)"]
    assert video["facts"]["video_duration_s"] == pytest.approx(10.0, abs=0.1)
    html = (tmp_path / "a.html").read_text()
    assert "Content credentials (C2PA)" in html and "created with TestVideoGen" in html
    assert "Container metadata" in html and "who signed, not that the content is true" in html
    assert main([*args, "--csv", str(tmp_path / "b.csv")]) == 1  # no anchors now: the stored result is reused
    again = {r["path"]: r for r in csv.DictReader(open(tmp_path / "b.csv", encoding="utf-8"))}[str(signed)]
    assert (again["reused"], again["provenance"], again["encoder"]) == ("yes", "untrusted", s["encoder"])


@pytest.mark.slow
def test_the_ray_engine_carries_links_credentials_and_facts(clips, colour_model, tmp_path):
    """A private Ray cluster scans a signed file and a fetched link: its workers fill the same fields."""
    pytest.importorskip("ray")
    pytest.importorskip("yt_dlp")
    import os
    import subprocess
    import sys

    from sources_helpers import LoopbackServer

    ca = ThrowawayCA()
    site = tmp_path / "site"
    site.mkdir()
    ca.sign(clips["fake_h264"], site / "signed.mp4")
    (tmp_path / "anchors.pem").write_text(ca.ca_pem)
    server = LoopbackServer(site)
    try:
        out = tmp_path / "ray.csv"
        done = subprocess.run(
            [sys.executable, "-m", "dfscan", "scan", server.url("/signed.mp4"), str(clips["real_avi"]), "--engine",
             "ray", "--model", str(colour_model), "--no-store", "--csv", str(out), "--media-dir",
             str(tmp_path / "media"), "--trust-anchors", str(tmp_path / "anchors.pem")],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    finally:
        server.close()
    assert done.returncode == 1, done.stderr
    rows = {r["source_url"]: r for r in csv.DictReader(open(out, encoding="utf-8"))}
    link = rows[server.url("/signed.mp4")]
    assert (link["verdict"], link["provenance"], link["provenance_ai"], link["extractor"]) == \
        ("FAKE", "valid", "true", "Generic")
    assert link["encoder"].startswith("Lavf") and rows[""]["provenance"] == "none"
