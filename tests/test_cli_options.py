"""The scan settings are declared once: `scan` and `evaluate` offer the same options, with the
library's own choices, and both turn them into the same ScanConfig."""
import click

from dfscan.common import constants
from dfscan.cli import cli
from dfscan.cli.options import SETTING_NAMES, pop_settings, scan_config


def params(command: str) -> dict[str, click.Parameter]:
    return {p.name: p for p in cli.commands[command].params}


def test_scan_and_evaluate_offer_the_same_scan_settings():
    scan, evaluate = params("scan"), params("evaluate")
    for name in SETTING_NAMES:
        a, b = scan[name], evaluate[name]
        assert (a.opts, a.default, repr(a.type)) == (b.opts, b.default, repr(b.type)), name
        if name == "workers":  # only scan has --engine, so only its help says how Ray workers are sized
            assert a.help.startswith(b.help.rstrip("]") + ";") and "--engine ray" in a.help
            assert "ray" not in b.help.lower()
        else:
            assert a.help == b.help, name


def test_choices_are_the_library_constants():
    scan = params("scan")
    for name, choices in (("aggregate", constants.AGGREGATES), ("decoder", constants.DECODERS),
                          ("device", constants.DEVICES), ("runtime", constants.RUNTIMES),
                          ("engine", constants.ENGINES)):
        assert tuple(scan[name].type.choices) == choices, name
    assert tuple(params("evaluate")["kind"].type.choices) == constants.EVAL_KINDS
    train = params("train")
    assert tuple(train["split"].type.choices) == constants.TRAIN_SPLITS
    assert tuple(train["preprocess"].type.choices) == tuple(constants.TRAIN_PROFILES)
    assert tuple(train["device"].type.choices) == constants.DEVICES


def test_the_settings_become_one_scan_config():
    ctx = cli.commands["evaluate"].make_context(
        "evaluate", ["--num-frames", "5", "--max-faces", "1", "--detect-size", "480", "--margin", "0.3",
                     "--decoder", "pyav", "--threshold", "0.6", "."])
    config = scan_config(pop_settings(dict(ctx.params)))
    assert config.frames.count == 5 and config.faces.max_faces == 1 and config.faces.detect_size == 480
    assert (config.margin, config.decoder, config.threshold) == (0.3, "pyav", 0.6)
