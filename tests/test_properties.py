"""Property-based tests: discovery, aggregation and the CSV round trip."""
import io
import os
import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfscan.verdicts.aggregate import AGGREGATES, aggregate
from dfscan.scanning.discover import VIDEO_EXTENSIONS, discover
from dfscan import Verdict, VideoResult
from dfscan.reports.writers import neutralise, restore, to_csv_text

scores = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40)


@given(scores, st.sampled_from(AGGREGATES), st.randoms(use_true_random=False))
def test_aggregate_stays_within_the_face_scores_and_ignores_order(values, method, rnd):
    result = aggregate(values, method)
    assert min(values) - 1e-12 <= result <= max(values) + 1e-12
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert abs(aggregate(shuffled, method) - result) < 1e-9


@given(st.text())
def test_neutralise_is_reversible_and_never_leaves_a_formula(cell):
    safe = neutralise(cell)
    assert restore(safe) == cell
    assert not safe or safe[0] not in "=+-@\t\r"


cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@settings(deadline=None)  # the first example imports pandas
@given(st.lists(cells, min_size=1, max_size=8))
def test_csv_round_trip_through_pandas(texts):
    import pandas as pd

    # dfscan's own report rows; the text goes into a path and into the free-text columns
    results = [VideoResult(path=Path(t or "x"), verdict=Verdict.ERROR, error=t, notes=(t, t)) for t in texts]
    frame = pd.read_csv(io.StringIO(to_csv_text(results)), dtype=str, keep_default_na=False)
    assert [restore(c) for c in frame["path"]] == [str(r.path) for r in results]
    assert [restore(c) for c in frame["error"]] == texts
    assert [restore(c) for c in frame["notes"]] == [f"{t}; {t}" for t in texts]
    assert not any(c[:1] in ("=", "+", "-", "@") for c in frame["path"].tolist() + frame["error"].tolist())


name_chars = string.ascii_letters + string.digits + " _-,'=+@"
names = st.text(name_chars, min_size=1, max_size=8).filter(lambda n: n.strip(". ") == n and n not in (".", ".."))
exts = st.sampled_from(["mp4", "MOV", "mkv", "txt", "jpg", "WebM", ""])
entries = st.lists(st.tuples(st.lists(names, max_size=2), names, exts, st.booleans()), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries)
def test_discover_finds_exactly_the_visible_videos(tmp_path_factory, tree):
    root = tmp_path_factory.mktemp("tree")
    expected = set()
    for folders, stem, ext, hidden in tree:
        rel_dir = os.path.join(*folders) if folders else ""
        name = ("." if hidden else "") + stem + (f".{ext}" if ext else "")
        path = root / rel_dir / name
        if path.exists() or any((root / os.path.join(*folders[: i + 1])).is_file() for i in range(len(folders))):
            continue  # a name already taken as a file or folder
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        if not hidden and ext.lower() in VIDEO_EXTENSIONS:
            expected.add(path)
    found = discover([root])
    assert all(f.error is None for f in found)
    assert {f.path for f in found} == expected
    rel = [f.path.relative_to(root).parts for f in found]
    assert rel == sorted(rel)  # each folder's entries in name order, depth first
