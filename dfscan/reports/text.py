"""What the reports share besides plain text (dfscan.common.text): the caveat on verdicts, the order of
suspicion, the scan-wide flat-scores warning."""
from __future__ import annotations

from typing import Iterable

from ..results import ScanReport, Verdict, VideoResult
from ..verdicts.aggregate import flat_scores_note

CAVEAT = ("A FAKE verdict is a reason to look closer, not proof; a REAL verdict does not clear a video.")
UNCERTAIN_MEANING = ("UNCERTAIN: the score lies in the model's uncertain band {band}, where its verdicts are "
                     "not to be trusted: a person must look.")


def suspicion_order(results: Iterable[VideoResult]) -> list[VideoResult]:
    """Most suspicious first: scored videos by score, then NO_FACE, then ERROR."""
    rank = {Verdict.FAKE: 0, Verdict.UNCERTAIN: 0, Verdict.REAL: 0, Verdict.NO_FACE: 1, Verdict.ERROR: 2}
    return sorted(results, key=lambda r: (rank[r.verdict], -(r.score or 0.0), str(r.path)))


def flat_note(report: ScanReport) -> str | None:
    """The scan-wide warning that the model's scores carry no information, if they barely vary."""
    return flat_scores_note([f.score for r in report.results for f in r.faces])
