"""Property-based tests: discovery, aggregation and the CSV round trip."""
import csv
import io
import os
import string

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfscan.aggregate import AGGREGATES, aggregate
from dfscan.discover import VIDEO_EXTENSIONS, discover
from dfscan.report import neutralise, restore

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


@given(st.lists(cells, min_size=1, max_size=8))
def test_csv_round_trip_through_pandas(paths):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "verdict"])  # as in the report, never a row of one cell
    for p in paths:
        writer.writerow([neutralise(p), "REAL"])
    frame = pd.read_csv(io.StringIO(buf.getvalue()), dtype=str, keep_default_na=False)
    assert [restore(c) for c in frame["path"]] == paths


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
