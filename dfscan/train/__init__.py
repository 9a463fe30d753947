"""Reproduce the DFDC Part-34 reference model: the library behind `dfscan train`.

The defaults follow ../shared/reference/dfdc-part34-protocol.md step by step:
pair each REAL video's frames with the same frames of its fakes (a pool of
fakes per real video, refilled when empty, the frame meeting an empty pool left
unpaired), a stratified 79/21 frame-level split with seed 63, EfficientNetB0
called with training=False -> GlobalAveragePooling2D -> Dropout(0.4) ->
Dense(1, sigmoid), phase 1 frozen (Adam 1e-4, up to 100 epochs), phase 2
unfrozen (Adam 1e-5, up to 50), early stopping on val AUC (patience 8, best
weights restored), the best epoch checkpointed as `best_model.keras`.

In parts, keras-io style: `config` (TrainConfig, progress events), `data` (pairing,
image checks, split, summary; no TensorFlow), `model` (the network and the tf.data
input pipeline), `fit` (both phases), `artifacts` (the files a run writes), and `run`
(`train()`, which chains them). Metrics are `dfscan.labelled.metrics`, shared with `evaluate`.
Nothing here prints, parses argv or exits: progress goes to `on_progress`, and any
Keras callbacks the caller passes.
"""
from .artifacts import REFERENCE_RESULTS, resolved_config, sidecar_data
from .config import PROFILES, SPLITS, Progress, TrainConfig, TrainProgress
from .data import Pair, Pairing, PreparedData, Sample, SkippedPair, pair_frames, prepare_data, split_samples
from .fit import PhaseSummary
from .model import build_model, make_dataset, with_head
from .run import TrainResult, train

__all__ = [
    "PROFILES", "REFERENCE_RESULTS", "SPLITS", "Pair", "Pairing", "PhaseSummary", "PreparedData", "Progress",
    "Sample", "SkippedPair", "TrainConfig", "TrainProgress", "TrainResult", "build_model", "make_dataset",
    "pair_frames", "prepare_data", "resolved_config", "sidecar_data", "split_samples", "train", "with_head",
]
