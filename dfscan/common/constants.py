"""The named choices of the library, in one light module (no numpy): the modules that check them
and the CLI that offers them (click choices, `--help` stays instant) read them from here."""
from __future__ import annotations

AGGREGATES = ("confident", "mean", "max")  # how face scores become a video score (verdicts/aggregate.py)
# Decoders `auto` tries (decode/source.py): the fastest exact one first (bench/); each later one gets the
# files the earlier cannot read.
AUTO_ORDER = ("pyav", "decord", "opencv")
DECODERS = ("auto", *AUTO_ORDER)
DEVICES = ("auto", "cpu", "gpu")
RUNTIMES = ("auto", "openvino", "tensorflow")  # see classifier/runtime.py
ENGINES = ("local", "ray")  # this process, or a Ray cluster (scanning/distributed.py)
EVAL_KINDS = ("auto", "crops", "videos")  # what `evaluate` measures on (labelled/evaluate.py)
TRAIN_SPLITS = ("frame", "by-original")  # train/config.py
TRAIN_PROFILES = {"reference": ("BGR", "0..1"), "keras": ("RGB", "0..255")}  # preprocessing: colour order, scale
