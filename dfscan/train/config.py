"""The settings of a training run and its progress events (no TensorFlow)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..classifier.model_info import MAX_INPUT_SIDE, Preprocess
from ..common.constants import TRAIN_PROFILES as PROFILES
from ..common.constants import TRAIN_SPLITS as SPLITS
from ..common.errors import ConfigError
from ..labelled.dataset import REFERENCE_FRAMES


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; the defaults reproduce the reference notebook."""

    data: Path
    output: Path | None = None  # default: a new dfscan-train-<time> folder in the current folder
    weights: str = "imagenet"  # imagenet | none | PATH to EfficientNetB0 no-top weights (.h5)
    preprocess: str = "reference"  # reference: BGR 0..1 (the notebook); keras: RGB 0..255
    split: str = "frame"  # frame (the notebook) | by-original
    test_size: float = 0.21
    split_seed: int = 63
    seed: int | None = None  # pairing picks, shuffling, initialisation, dropout; None: drawn and recorded
    epochs: int | None = None  # caps each phase
    phase1_epochs: int = 100
    phase2_epochs: int = 50
    phase1_lr: float = 1e-4
    phase2_lr: float = 1e-5
    batch_size: int = 32
    patience: int = 8
    dropout: float = 0.4
    input_size: int = 224
    frames: tuple[int, ...] = REFERENCE_FRAMES
    mixed_precision: bool = False
    deterministic: bool = False  # TensorFlow op determinism (slower on GPU)
    device: str = "auto"
    run_eagerly: bool = False  # skips Keras' graph build (~1 min for EfficientNetB0 on a CPU); slow per step
    name: str | None = None  # the model's name in reports; default from the output folder
    dry_run: bool = False  # pair, check, split and write the data files, then stop
    read_workers: int = 4

    def __post_init__(self):
        checks = [
            (self.split in SPLITS, f"unknown split {self.split!r} (expected one of {SPLITS})"),
            (self.preprocess in PROFILES, f"unknown preprocessing {self.preprocess!r} (expected one of {tuple(PROFILES)})"),
            (0 < self.test_size < 1, "the test share must be between 0 and 1"),
            (self.epochs is None or self.epochs >= 1, "--epochs must be at least 1"),
            (self.phase1_epochs >= 0 and self.phase2_epochs >= 0, "phase epochs cannot be negative"),
            (self.phase1_epochs + self.phase2_epochs > 0, "at least one phase must train"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.patience >= 1, "patience must be at least 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.input_size >= 32, "--input-size must be at least 32 (EfficientNetB0's smallest input)"),
            (self.input_size <= MAX_INPUT_SIDE,
             f"--input-size must be at most {MAX_INPUT_SIDE} (the largest model input dfscan scans with)"),
            (len(self.frames) > 0, "no frames to pair"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def max_epochs(self) -> tuple[int, int]:
        """Epoch limits of phase 1 and phase 2 after the --epochs cap."""
        cap = self.epochs if self.epochs is not None else max(self.phase1_epochs, self.phase2_epochs)
        return min(self.phase1_epochs, cap), min(self.phase2_epochs, cap)

    def preprocessing(self) -> Preprocess:
        order, scale = PROFILES[self.preprocess]
        return Preprocess(input_size=(self.input_size, self.input_size), color_order=order, scale=scale)


@dataclass(frozen=True)
class TrainProgress:
    """A progress event. stage: check | phase | batch | epoch | evaluate."""

    stage: str
    done: int = 0
    total: int | None = None
    phase: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    logs: dict[str, float] = field(default_factory=dict)


Progress = Callable[[TrainProgress], None]


def no_progress(_event: TrainProgress) -> None:
    """The default `on_progress`: nobody is listening."""
