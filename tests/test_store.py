"""The store's snapshot for Ray workers answers lookups as the store does, for its model and settings only."""
from pathlib import Path

from dfscan.results import Verdict, VideoResult
from dfscan.store import ResultStore, settings_key


def test_a_snapshot_answers_as_the_store_for_its_model_and_settings(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    ours, other = settings_key({"frames": [0, 30]}), settings_key({"frames": [0]})
    row = VideoResult(path=Path("a.mp4"), verdict=Verdict.FAKE, score=0.9, sha256="a" * 64).to_dict(images=False)
    store.put("a" * 64, "m" * 64, ours, row, "a.mp4")
    store.put("b" * 64, "m" * 64, other, row, "b.mp4")
    store.put("c" * 64, "n" * 64, ours, row, "c.mp4")
    snap = store.snapshot("m" * 64, ours[0])
    assert set(snap.rows) == {"a" * 64}  # only what this model and these settings can reuse
    assert snap.lookup("a" * 64, "m" * 64, ours[0]) == store.lookup("a" * 64, "m" * 64, ours[0])
    assert snap.lookup("a" * 64, "n" * 64, ours[0]) is None and snap.lookup("a" * 64, "m" * 64, other[0]) is None
    damaged = type(snap)(snap.model, snap.settings, {"a" * 64: ("{not json", 1.0)})
    assert damaged.lookup("a" * 64, "m" * 64, ours[0]) is None  # scanned again, as with an unreadable store
    store.close()
