import pytest

from dfscan.verdicts.aggregate import Verdict, aggregate, verdict


def test_mean_and_max():
    scores = [0.1, 0.2, 0.9]
    assert aggregate(scores, "mean") == pytest.approx(0.4)
    assert aggregate(scores, "max") == 0.9


def test_confident_fires_with_ten_faces_when_a_third_are_confidently_fake():
    scores = [0.95, 0.9, 0.85, 0.99] + [0.1] * 6  # 4 of 10 confident fakes
    assert aggregate(scores, "confident") == pytest.approx((0.95 + 0.9 + 0.85 + 0.99) / 4)
    assert aggregate(scores, "mean") < 0.5 < aggregate(scores, "confident")


def test_confident_ignores_a_lone_outlier():
    scores = [0.99] + [0.1] * 9  # 1 of 10 is below a third, and 9 of 10 are confident reals
    assert aggregate(scores, "confident") == pytest.approx(0.1)
    assert aggregate(scores, "max") == 0.99


def test_confident_falls_back_to_the_mean_when_unsure():
    scores = [0.5, 0.6, 0.4, 0.1]
    assert aggregate(scores, "confident") == pytest.approx(0.4)


def test_single_face_and_errors():
    assert aggregate([0.7], "confident") == 0.7
    with pytest.raises(ValueError):
        aggregate([], "mean")
    with pytest.raises(ValueError):
        aggregate([0.5], "median")


def test_verdict_is_fake_only_above_the_threshold():
    assert verdict(0.5, 0.5) is Verdict.REAL
    assert verdict(0.5001, 0.5) is Verdict.FAKE
    assert verdict(0.2, 0.1) is Verdict.FAKE


def test_flat_scores_are_flagged_only_when_many_faces_barely_vary():
    from dfscan.verdicts.aggregate import flat_scores_note

    assert flat_scores_note([0.5] * 19) is None  # too few faces to tell
    note = flat_scores_note([0.5, 0.5049] + [0.502] * 18)
    assert note and "20 faces" in note and "carry no information" in note
    assert flat_scores_note([0.5, 0.511] + [0.502] * 18) is None
