"""Training data: pair the frames, check the images, split (no TensorFlow).

The pairing follows ../shared/reference/dfdc-part34-protocol.md: each REAL video's
frames are paired with the same frames of its fakes (a pool of fakes per real video,
refilled when empty, the frame meeting an empty pool left unpaired); a pair with a
missing or unreadable image is dropped whole, then the samples are split stratified
over images (frame) or grouped by real video (by-original).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..common.errors import DataError
from ..labelled.dataset import LABELS, VideoRow, check_images, frame_path, images_dir, read_metadata
from .config import Progress, TrainConfig, TrainProgress, no_progress

SPLIT_NOTES = {
    "frame": "frame-level split as in the reference notebook: frames of one video, and of one person, fall on "
             "both sides, which flatters the score",
    "by-original": "group split: each real video and all of its fakes fall on one side (no identity leak)",
}


@dataclass(frozen=True)
class Pair:
    """Frame `frame` of REAL video `real` paired with the same frame of its fake `fake`."""

    real: str
    fake: str
    frame: int


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[Pair, ...]
    fakes_per_original: dict[str, int]
    pairs_per_original: dict[str, int]
    reals_without_fakes: tuple[str, ...]
    fakes_without_original: tuple[str, ...]  # FAKE rows whose original is not a REAL row: never paired


def pair_frames(rows: Sequence[VideoRow], frames: Sequence[int], rng: random.Random) -> Pairing:
    """The notebook's pairing, with its random picks drawn from `rng`.

    For each REAL video with fakes (in metadata order), walk the frames in order:
    take a fake at random from the pool and remove it; when the pool is empty the
    frame gets no pair and the pool is refilled with all the fakes for the next frame.
    """
    reals = [r.name for r in rows if r.label == LABELS["REAL"]]
    real_set = set(reals)
    fakes: dict[str, list[str]] = {}
    orphans = []
    for r in rows:
        if r.label == LABELS["FAKE"]:
            if r.original in real_set:
                fakes.setdefault(r.original, []).append(r.name)
            else:
                orphans.append(r.name)
    pairs: list[Pair] = []
    per_original: dict[str, int] = {}
    for real in reals:
        own = fakes.get(real)
        if not own or real in per_original:
            continue
        pool = list(own)
        before = len(pairs)
        for frame in frames:
            if not pool:
                pool = list(own)  # refilled for the next frame; this one stays unpaired
                continue
            pick = rng.choice(pool)
            pool.remove(pick)
            pairs.append(Pair(real, pick, frame))
        per_original[real] = len(pairs) - before
    return Pairing(
        pairs=tuple(pairs),
        fakes_per_original={real: len(fakes[real]) for real in per_original},
        pairs_per_original=per_original,
        reals_without_fakes=tuple(r for r in dict.fromkeys(reals) if r not in fakes),
        fakes_without_original=tuple(orphans),
    )


@dataclass(frozen=True)
class Sample:
    """One training image: a face crop, its label and the real video its group belongs to."""

    image: str  # relative to the images folder: <video>/<frame>.jpg
    label: int
    video: str
    original: str  # the REAL video of its pair (the group of a by-original split)
    frame: int


@dataclass(frozen=True)
class SkippedPair:
    pair: Pair
    image: str
    reason: str


@dataclass(frozen=True)
class PreparedData:
    """Everything decided before training: the pairs, what was skipped and why, the split."""

    images: Path
    pairing: Pairing
    skipped: tuple[SkippedPair, ...]
    samples: tuple[Sample, ...]
    train: tuple[int, ...]  # indices into samples
    test: tuple[int, ...]
    split: dict[str, Any] = field(compare=False)

    def summary(self) -> dict[str, Any]:
        p = self.pairing
        return {
            "images_folder": str(self.images),
            "real_videos_paired": len(p.pairs_per_original),
            "pairs_from_metadata": len(p.pairs),
            "pairs_skipped": len(self.skipped),
            "pairs_used": len(self.samples) // 2,
            "images_used": len(self.samples),
            "skipped": [{"real": s.pair.real, "fake": s.pair.fake, "frame": s.pair.frame, "image": s.image,
                         "reason": s.reason} for s in self.skipped],
            "skipped_note": "a pair with a missing or unreadable image is dropped whole, keeping the classes balanced",
            "reals_without_fakes": len(p.reals_without_fakes),
            "fakes_per_original": p.fakes_per_original,
            "pairs_per_original": p.pairs_per_original,
            "fakes_without_original": list(p.fakes_without_original),
            "split": self.split,
        }



def prepare_data(config: TrainConfig, seed: int, on_progress: Progress | None = None) -> PreparedData:
    """Pair the frames, check every image of every pair, and split."""
    images = images_dir(config.data).resolve()
    pairing = pair_frames(read_metadata(images), config.frames, random.Random(seed))
    if not pairing.pairs:
        raise DataError(f"{images}: no REAL video with fakes in the metadata, so no pair to train on")
    paths = [frame_path(images, v, p.frame) for p in pairing.pairs for v in (p.real, p.fake)]
    progress = on_progress or no_progress

    def checked(n: int) -> None:
        if n % 256 == 0 or n == len(paths):
            progress(TrainProgress("check", n, len(paths)))

    problems = check_images(paths, config.read_workers, checked)
    samples, skipped = [], []
    for pair in pairing.pairs:
        bad = [(v, problems[path]) for v in (pair.real, pair.fake)
               if (path := frame_path(images, v, pair.frame)) in problems]
        if bad:
            skipped.extend(SkippedPair(pair, f"{v}/{pair.frame}.jpg", why) for v, why in bad)
            continue
        samples.append(Sample(f"{pair.real}/{pair.frame}.jpg", 0, pair.real, pair.real, pair.frame))
        samples.append(Sample(f"{pair.fake}/{pair.frame}.jpg", 1, pair.fake, pair.real, pair.frame))
    if len(samples) < 4:
        raise DataError(f"only {len(samples)} usable images after skipping missing or unreadable ones")
    train_idx, test_idx = split_samples(samples, config.split, config.test_size, config.split_seed)
    return PreparedData(images, pairing, tuple(skipped), tuple(samples), train_idx, test_idx,
                        split_summary(samples, train_idx, test_idx, config))


def split_samples(samples: Sequence[Sample], kind: str, test_size: float, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Train and test indices: stratified over images (frame) or grouped by real video (by-original)."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    idx = np.arange(len(samples))
    labels = [s.label for s in samples]
    try:
        if kind == "frame":
            train, test = train_test_split(idx, test_size=test_size, stratify=labels, random_state=seed)
        else:
            groups = [s.original for s in samples]
            train, test = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(idx, labels, groups))
    except ValueError as exc:  # too few samples or groups for the requested share
        raise DataError(f"cannot split {len(samples)} images {test_size:.0%} for testing ({kind}): {exc}") from exc
    return tuple(int(i) for i in sorted(train)), tuple(int(i) for i in sorted(test))


def split_summary(samples: Sequence[Sample], train: Sequence[int], test: Sequence[int], config: TrainConfig) -> dict[str, Any]:
    def side(idx: Sequence[int]) -> dict[str, int]:
        return {"images": len(idx), "real": sum(samples[i].label == 0 for i in idx),
                "fake": sum(samples[i].label == 1 for i in idx),
                "originals": len({samples[i].original for i in idx})}

    both = {samples[i].original for i in train} & {samples[i].original for i in test}
    return {"kind": config.split, "test_size": config.test_size, "seed": config.split_seed,
            "stratified": config.split == "frame", "train": side(train), "test": side(test),
            "test_share": round(len(test) / len(samples), 4), "originals_on_both_sides": len(both),
            "note": SPLIT_NOTES[config.split]}
