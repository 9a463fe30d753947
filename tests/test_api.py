"""The one scan loop (`dfscan.api.scan_with`): every sink sees every result, and the report is those results."""
import shutil

import pytest

from dfscan import ScanConfig
from dfscan.api import open_scanner, scan, scan_with


class Recorder:
    """A sink that keeps what it is given, and can raise at its n-th result (as Ctrl-C does in the CLI)."""

    def __init__(self, stop_at: int | None = None):
        self.found, self.results, self.stop_at = None, [], stop_at

    def start(self, found):
        assert self.found is None, "start called twice"
        self.found = list(found)

    def add(self, result):
        assert self.found is not None, "add before start"
        self.results.append(result)
        if len(self.results) == self.stop_at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def scanner(colour_model):
    with open_scanner(ScanConfig(model=str(colour_model), store=None)) as s:
        yield s


def test_every_sink_is_fed_each_result_and_the_report_is_what_they_saw(scanner, clips):
    first, second = Recorder(), Recorder()
    report = scan_with(scanner, [clips["root"]], [first, second])
    names = sorted(f.path.name for f in first.found)
    assert names == ["fake_h264.MP4", "fake_red.mp4", "no_face.mp4", "real_blue.avi", "short_blue.webm"]
    assert [r.path for r in first.results] == [f.path for f in first.found]  # one each, in discovery order
    assert first.results == report.results and all(a is b for a, b in zip(report.results, first.results))
    assert second.results == first.results and second.found == first.found
    assert report.paths == [str(clips["root"])] and report.threshold == scanner.threshold
    assert {r.path.name: r.verdict.value for r in report.results}["fake_red.mp4"] == "FAKE"


def test_an_exception_from_a_sink_ends_the_scan(scanner, clips):
    after = Recorder()
    with pytest.raises(KeyboardInterrupt):
        scan_with(scanner, [clips["root"]], [Recorder(stop_at=2), after])
    assert len(after.results) == 1  # the sink after the one that raised never saw the second result


def test_scan_opens_its_own_scanner_and_feeds_the_sinks(colour_model, clips, tmp_path):
    one = tmp_path / "one.mp4"
    shutil.copy(clips["fake_mp4"], one)
    sink = Recorder()
    report = scan([one, tmp_path / "missing.mp4"], ScanConfig(model=str(colour_model), store=None), sinks=[sink])
    assert [f.path for f in sink.found] == [one, tmp_path / "missing.mp4"]  # a missing file is a row too
    assert sink.results == report.results and [r.verdict.value for r in report.results] == ["FAKE", "ERROR"]
    assert report.paths == [str(one), str(tmp_path / "missing.mp4")]
