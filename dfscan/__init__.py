"""dfscan: a deepfake scanner for video.

    from dfscan import scan, ScanConfig
    report = scan(["videos/"], ScanConfig(model="model.keras"))

Heavy modules load on first use, so importing dfscan (and `dfscan --help`) is cheap.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["scan", "scan_with", "open_scanner", "ResultSink", "ScanConfig", "ScanReport", "Scanner", "VideoResult",
           "FaceScore", "Verdict", "FrameSpec", "__version__", "Band", "Person"]

_LAZY = {
    "scan": "api", "scan_with": "api", "open_scanner": "api", "ResultSink": "api", "ScanConfig": "scanning.pipeline",
    "Scanner": "scanning.pipeline", "FrameSpec": "decode.read",
    "ScanReport": "results", "VideoResult": "results", "FaceScore": "results", "Verdict": "results",
    "Person": "results",
    "Band": "verdicts.band",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'dfscan' has no attribute {name!r}")
