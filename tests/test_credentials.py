"""Content credentials (dfscan/sources/credentials.py): real C2PA signatures made in the test from a throwaway
CA, read back as valid (the CA as trust anchor), untrusted (no anchors), invalid (one byte changed), none."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("c2pa")
pytest.importorskip("cryptography")

from sources_helpers import ThrowawayCA, flip_byte_in_media  # noqa: E402

from dfscan.sources.credentials import C2PA_UUID, MAX_MANIFEST_BYTES, locate, read  # noqa: E402


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA()


@pytest.fixture(scope="module")
def signed(ca, clips, tmp_path_factory):
    """Signed copies of the H.264 clip: one declaring generative AI, one a camera capture."""
    folder = tmp_path_factory.mktemp("signed")
    return {"ai": ca.sign(clips["fake_h264"], folder / "ai.mp4"),
            "capture": ca.sign(clips["fake_h264"], folder / "capture.mp4", source_type="digitalCapture",
                               generator="TestCamera")}


def test_a_signature_chaining_to_the_trust_anchors_is_valid_and_its_declarations_are_read(ca, signed):
    c = read(signed["ai"], ca.ca_pem)
    assert c.state == "valid" and c.reason is None
    assert c.ai is True
    assert c.issuer == "dfscan test org"
    assert c.generator == "TestVideoGen 1.0"
    assert any(line.startswith("created with TestVideoGen (made by generative AI)") for line in c.history)
    capture = read(signed["capture"], ca.ca_pem)
    assert capture.state == "valid" and capture.ai is False and "a camera capture" in " ".join(capture.history)


def test_without_the_anchor_the_same_signature_is_untrusted(signed):
    assert read(signed["ai"], None).state == "untrusted"
    other = ThrowawayCA("someone else")
    assert read(signed["ai"], other.ca_pem).state == "untrusted"


def test_one_changed_byte_makes_it_invalid_with_a_reason(ca, signed, tmp_path):
    tampered = shutil.copy(signed["ai"], tmp_path / "tampered.mp4")
    flip_byte_in_media(tampered)
    c = read(tampered, ca.ca_pem)
    assert c.state == "invalid"
    assert c.reason and "\n" not in c.reason and "mismatch" in c.reason.lower()


def test_an_unsigned_file_has_none(clips, ca):
    for name in ("fake_h264", "real_avi", "short_webm"):
        assert read(clips[name], ca.ca_pem).state == "none"


def _with_c2pa_box(source, dest, payload: bytes):
    """An MP4 with a C2PA `uuid` box of our making placed after its first box."""
    data = source.read_bytes()
    first = int.from_bytes(data[:4], "big")
    box = (24 + len(payload)).to_bytes(4, "big") + b"uuid" + C2PA_UUID + b"\0" * 4 + payload
    dest.write_bytes(data[:first] + box + data[first:])
    return dest


def test_a_malformed_manifest_is_invalid_with_one_line(clips, tmp_path):
    bad = _with_c2pa_box(clips["fake_h264"], tmp_path / "garbage.mp4", b"jumb" + bytes(range(256)) * 8)
    c = read(bad, None)
    assert c.state == "invalid" and c.reason and "\n" not in c.reason


def test_a_huge_manifest_is_refused_without_being_read(clips, tmp_path):
    huge = _with_c2pa_box(clips["fake_h264"], tmp_path / "huge.mp4", b"\0" * (MAX_MANIFEST_BYTES + 1))
    assert locate(huge)[1] > MAX_MANIFEST_BYTES
    c = read(huge, None)
    assert c.state == "invalid" and "limit" in c.reason
