"""Options declared once: the scan settings that `scan` and `evaluate` share (and the few `train`
shares), their choices taken from the library's constants, and the ScanConfig they become."""
from __future__ import annotations

from typing import Any, Callable

import click

from ..common.constants import AGGREGATES, DECODERS, DEVICES, RUNTIMES
from ..common.limits import RANGES


def _frames(ctx, param, value):
    if value is None:
        return None
    from ..decode.read import FrameSpec

    try:
        return FrameSpec.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


model = click.option(
    "--model", "-m", metavar="MODEL",
    help="A registry name (see `dfscan models list`), hf://owner/repo[/file][@rev], or a .keras file.  "
         "[default: the reference model]")
offline = click.option("--offline", is_flag=True,
                       help="Never touch the network; use the hub cache only (as HF_HUB_OFFLINE=1).")
frames = click.option("--frames", callback=_frames, metavar="SPEC",
                      help="Frames to sample: START:STOP:STEP or a list 0,30,60.  [default: 0:271:30]")
num_frames = click.option("--num-frames", type=click.IntRange(*RANGES["num_frames"]), metavar="N",
                          help="Instead of --frames, sample N frames spread over the whole clip.")
max_faces = click.option("--max-faces", default=2, show_default=True, type=click.IntRange(*RANGES["max_faces"]),
                         help="Score the K largest faces of each frame.")
margin = click.option("--margin", type=click.FloatRange(*RANGES["margin"]),
                      help="Crop margin around a face box, as a share of its size.  [default: the model's, else 0.16]")
face_confidence = click.option("--face-confidence", default=0.5, show_default=True,
                               type=click.FloatRange(*RANGES["face_confidence"]),
                               help="Minimum face-detector confidence.")
detect_size = click.option(
    "--detect-size", default=640, show_default=True, type=click.IntRange(*RANGES["detect_size"]),
    help="Longest side of the frame copy the face detector sees, for frames up to full HD (larger "
         "frames are scaled as full HD is). Smaller is faster but misses small faces (in 1080p: 640 "
         "finds faces from ~60 px tall, 480 from ~80).")
device = click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
runtime = click.option(
    "--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
    help="openvino: both networks on the CPU through OpenVINO; tensorflow: TensorFlow (CPU or GPU) and "
         "OpenCV; auto: OpenVINO unless a GPU is used. Same scores either way.")
aggregate = click.option("--aggregate", type=click.Choice(AGGREGATES), default=AGGREGATES[0], show_default=True,
                         help="How face scores become one video score.")
threshold = click.option("--threshold", type=click.FloatRange(*RANGES["threshold"]), metavar="P",
                         help="FAKE when the video score is above P.  [default: the model's, 0.5]")


def _band(ctx, param, value):
    if value is None:
        return None
    from ..common.errors import ConfigError
    from ..verdicts.band import Band

    try:
        return Band.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


uncertain = click.option(
    "--uncertain", callback=_band, metavar="LOW:HIGH|none",
    help="Video scores in (LOW, HIGH] are UNCERTAIN (a person must look), above HIGH FAKE, at or below LOW "
         "REAL; the band must hold the threshold. none: no band.  [default: the model's band, see `dfscan "
         "models info`]")
workers = click.option("--workers", type=click.IntRange(*RANGES["workers"]), metavar="N",
                       help="Videos decoded at the same time.  [default: one per CPU core, plus one]")
decoder = click.option("--decoder", type=click.Choice(DECODERS), default="auto", show_default=True,
                       help="auto: PyAV, then decord, then OpenCV for files the earlier cannot read.")
video_timeout = click.option(
    "--video-timeout", type=click.FloatRange(*RANGES["video_timeout"]), metavar="SECONDS",
    help="Give up on a video whose decoding takes longer (an ERROR row; the scan goes on).  "
         "[default: 60 s plus 0.05 s per full-HD frame asked]")
verbose = click.option("--verbose", "-v", is_flag=True, help="More detail on stderr.")


def batch_size(help: str | None = None) -> Callable:
    return click.option("--batch-size", default=32, show_default=True, type=click.IntRange(*RANGES["batch_size"]),
                        help=help)


def quiet(help: str) -> Callable:
    return click.option("--quiet", "-q", is_flag=True, help=help)


def apply(*options: Callable) -> Callable:
    """One decorator applying `options` in the order given (as if written one above the other)."""
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


# The settings of a scan, shared by `scan` and `evaluate`: option name -> parameter name.
SCAN_SETTINGS = apply(model, offline, frames, num_frames, max_faces, margin, face_confidence, detect_size,
                      batch_size("Face crops per network call (batched across videos)."), device, runtime,
                      aggregate, threshold, uncertain, workers, decoder, video_timeout)
SETTING_NAMES = ("model", "offline", "frames", "num_frames", "max_faces", "margin", "face_confidence",
                 "detect_size", "batch_size", "device", "runtime", "aggregate", "threshold", "uncertain", "workers",
                 "decoder", "video_timeout")


def pop_settings(options: dict[str, Any]) -> dict[str, Any]:
    """Take the SCAN_SETTINGS values out of a command's keyword arguments."""
    return {name: options.pop(name) for name in SETTING_NAMES}


def scan_config(s: dict[str, Any], **extra):
    """The SCAN_SETTINGS values (and any other ScanConfig fields) -> a frozen ScanConfig."""
    from ..decode.read import FrameSpec
    from ..scanning.faces import FaceConfig
    from ..scanning.pipeline import ScanConfig

    if s["frames"] is not None and s["num_frames"] is not None:
        raise click.UsageError("use either --frames or --num-frames, not both")
    spec = FrameSpec.spread(s["num_frames"]) if s["num_frames"] else (s["frames"] or FrameSpec())
    faces = FaceConfig(max_faces=s["max_faces"], detect_size=s["detect_size"], min_confidence=s["face_confidence"])
    return ScanConfig(
        model=s["model"], offline=s["offline"], frames=spec, faces=faces, margin=s["margin"],
        batch_size=s["batch_size"], device=s["device"], runtime=s["runtime"], aggregate=s["aggregate"],
        threshold=s["threshold"], workers=s["workers"], decoder=s["decoder"], uncertain=s["uncertain"],
        video_timeout=s["video_timeout"], **extra)
