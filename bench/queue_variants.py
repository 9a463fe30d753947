"""Seen before, measured: how often a made-up variant of a clip matches its original, and how often
two unrelated clips match (docs/queues.md).

    python bench/queue_variants.py                       # the clips of ../shared/data/dev (when present)
    python bench/queue_variants.py --clips DIR --out bench/queue_variants.json

Each clip gets four variants made with ffmpeg: re-encoded (x264, CRF 35), resized to half its
width, trimmed (its first 2 s cut), and watermarked (a box with text over a corner). Fingerprints
are taken as a scan takes them (the default frames, dfscan.queue.fingerprint.frame_hash on each
decoded frame). For every pair of fingerprints the similarity at each Hamming distance limit is
computed: pairs of one clip's versions should match, pairs of different clips should not. Pairs
where both clips come from the same footage (FF++'s deepfake and its source) are reported apart.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

VARIANTS = {
    "reencoded": ["-c:v", "libx264", "-crf", "35", "-preset", "veryfast"],
    "resized": ["-vf", "scale=trunc(iw/4)*2:-2", "-c:v", "libx264", "-preset", "veryfast"],
    "trimmed": ["-ss", "2", "-c:v", "libx264", "-preset", "veryfast"],
    "watermark": ["-vf", "drawbox=x=iw*0.70:y=ih*0.04:w=iw*0.26:h=ih*0.10:color=white@0.8:t=fill,"
                         "drawgrid=x=iw*0.72:y=ih*0.05:w=iw*0.03:h=ih*0.03:color=red@0.9:t=2",
                  "-c:v", "libx264", "-preset", "veryfast"],
}
SAME_FOOTAGE = [{"ffpp_Deepfakes__519_515", "ffpp_youtube__519"}]  # a deepfake and the video it was made from


def make_variants(clip: Path, work: Path) -> dict[str, Path]:
    import imageio_ffmpeg

    out = {"original": clip}
    for name, args in VARIANTS.items():
        dst = work / f"{clip.stem}.{name}.mp4"
        if not dst.exists():
            pre, args = (args[:2], args[2:]) if args[0] == "-ss" else ([], args)
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *pre, "-i", str(clip),
                            "-an", *args, str(dst)], check=True)
        out[name] = dst
    return out


def fingerprint(path: Path) -> list[int]:
    """The frame hashes a scan keeps for `path` (cached beside the variants, by size and mtime)."""
    from dfscan.queue.fingerprint import frame_hash
    from dfscan.decode.read import FrameSpec, read_frames

    st = path.stat()
    cache = Path(tempfile.gettempdir()) / "dfscan-bench-queue" / "prints.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    if key not in known:
        hashes: list[int] = []
        read_frames(path, FrameSpec(), "auto", 2, keep=lambda frame: hashes.append(frame_hash(frame)))
        known[key] = hashes
        cache.write_text(json.dumps(known))
    return known[key]


def main() -> None:
    from dfscan.queue.fingerprint import similarity
    from dfscan.queue.seen import MAX_DISTANCE, MIN_SIMILARITY

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=HERE.parent.parent / "shared" / "data" / "dev")
    ap.add_argument("--out", type=Path, default=HERE / "queue_variants.json")
    args = ap.parse_args()
    clips = sorted(p for p in args.clips.rglob("*") if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm"})
    if not clips:
        sys.exit(f"no clips under {args.clips}")
    work = Path(tempfile.gettempdir()) / "dfscan-bench-queue"
    work.mkdir(exist_ok=True)
    prints = {}
    for clip in clips:
        for variant, path in make_variants(clip, work).items():
            prints[(clip.stem, variant)] = fingerprint(path)
            print(clip.stem, variant, len(prints[(clip.stem, variant)]), file=sys.stderr)
    limits = list(range(0, 25, 2))
    same = {v: {d: 0 for d in limits} for v in VARIANTS}
    kinds = {"unrelated": {d: 0 for d in limits}, "same_footage": {d: 0 for d in limits}}
    pairs = {"unrelated": 0, "same_footage": 0}
    for (a, fa), (b, fb) in itertools.permutations(prints.items(), 2):  # similarity is the new file's share
        if a[0] == b[0]:
            if b[1] == "original" and a[1] != "original":
                for d in limits:
                    same[a[1]][d] += similarity(fa, fb, d) >= MIN_SIMILARITY
            continue
        kind = "same_footage" if {a[0], b[0]} in SAME_FOOTAGE else "unrelated"
        pairs[kind] += 1
        for d in limits:
            kinds[kind][d] += similarity(fa, fb, d) >= MIN_SIMILARITY
    n = len(clips)
    result = {"clips": n, "variants_per_clip": len(VARIANTS), "min_similarity": MIN_SIMILARITY,
              "max_distance": MAX_DISTANCE, "ordered_pairs": pairs,
              "variants_matched": {d: sum(same[v][d] for v in VARIANTS) / (n * len(VARIANTS)) for d in limits},
              "by_variant": {v: {d: same[v][d] / n for d in limits} for v in VARIANTS},
              "false_matches": kinds["unrelated"], "same_footage_matches": kinds["same_footage"]}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
