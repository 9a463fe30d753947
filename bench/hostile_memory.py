"""Peak memory and time of a scan with one crafted file beside a good clip, against the good clip alone.

    python bench/hostile_memory.py                       # this checkout
    python bench/hostile_memory.py --code /work/main     # another checkout, for a before/after table
    python bench/hostile_memory.py --boxes 1000000       # a smaller box file (the full one is 192 MB)

Each scan runs as `dfscan scan GOOD [CRAFTED] --no-store` in its own process, with as many file
handles as the system allows; its peak RSS is its own VmHWM (Linux). The crafted files are the ones of issue 17: an ffconcat script that lists
itself, a 10,000-line concat playlist, 12 frames of 8000x8000, 3 frames of 16000x16000, an 8K
clip with a face filling the frame (accepted: its crops must stay small), 999 video streams, and
an MP4 of one ftyp box and millions of 8-byte free boxes; issue 27 added an MP4 whose sample table
claims 89 million samples of one size (decoding workers' peaks are added to the scan's own). The model
is bench_scan's full-size EfficientNetB0. Then the other memory items of issue 27, each by its own
script: `evaluate --kind crops` (eval_crops_memory.py) and `--from-file` naming missing files
(from_file_missing.py); `--no-others` leaves them out. Writes bench/hostile_memory.json (or --json).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))


def ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def big_face_frames(n: int, size: tuple[int, int]):
    """Frames whose face fills most of the height: at 8K its crop is ~4000 px square."""
    import cv2
    import numpy as np
    from conftest import face_photo

    w, h = size
    photo = cv2.resize(face_photo(), None, fx=0.9 * h / 240, fy=0.9 * h / 240)
    frame = np.full((h, w, 3), 90, np.uint8)
    ph, pw = photo.shape[:2]
    frame[(h - ph) // 2: (h - ph) // 2 + ph, (w - pw) // 2: (w - pw) // 2 + pw] = photo
    for _ in range(n):
        yield frame


def make_files(folder: Path, boxes: int) -> tuple[Path, dict[str, Path]]:
    from bench_scan import make_clips
    from conftest import H264, write_ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    good = make_clips(folder, 1, size=(854, 480))[0]
    made = {}
    path = folder / "self.mp4"
    path.write_text("ffconcat version 1.0\nfile self.mp4\n")
    made["ffconcat, lists itself"] = path
    path = folder / "playlist.mp4"
    path.write_text("ffconcat version 1.0\n" + f"file {good.name}\n" * 10_000)
    made["ffconcat, 10,000 lines"] = path
    for name, side, frames in (("big8000.mp4", 8000, 12), ("big16000.mp4", 16000, 3)):
        path = folder / name
        if not path.exists():
            ffmpeg("-f", "lavfi", "-i", f"color=gray:s={side}x{side}:r=30", "-frames:v", frames,
                   "-c:v", "libx264", "-preset", "ultrafast", path)
        made[f"{frames} frames {side}x{side}"] = path
    path = folder / "face8k.mp4"
    if not path.exists():
        write_ffmpeg(path, big_face_frames(12, (7680, 4320)), H264[:4] + ["-preset", "ultrafast"])
    made["8K, face filling the frame (accepted)"] = path
    src, path = folder / "s1080.mp4", folder / "streams999.mkv"
    if not path.exists():
        ffmpeg("-f", "lavfi", "-i", "testsrc=s=1920x1080:r=30", "-frames:v", 60, "-c:v", "libx264", src)
        ffmpeg("-i", src, *[a for _ in range(999) for a in ("-map", "0:v")], "-c", "copy", path)
    made["999 video streams"] = path
    path = folder / f"boxes{boxes}.mp4"
    if not path.exists():
        with open(path, "wb") as fh:
            fh.write(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
            chunk = b"\x00\x00\x00\x08free" * 100_000
            for _ in range(boxes // 100_000):
                fh.write(chunk)
            fh.write(b"\x00\x00\x00\x08free" * (boxes % 100_000))
    made[f"ftyp + {boxes:,} free boxes"] = path
    path = folder / "claims89m.mp4"  # issue 27: one constant sample size, 89M samples claimed in 20 bytes
    data = bytearray(good.read_bytes())
    at = data.find(b"stsz") + 4  # version and flags, sample size, sample count
    data[at + 4:at + 12] = (1000).to_bytes(4, "big") + (89_000_000).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    made["stsz claiming 89M samples"] = path
    return good, made


WRAPPER = """
import resource, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the ffconcat crash needs 8192 handles or more
from dfscan.cli import main
try:
    code = main(sys.argv[1:])
finally:  # this process's own peak; getrusage and wait4 also count the parent it was forked from
    with open("/proc/self/status") as fh:
        peak = int(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))
    try:  # decoding in worker processes (issue 27): their largest peak counts too
        from dfscan.decode import worker
        peak += worker.peak_rss // 1024
    except ImportError:
        pass
    print("PEAK_KIB", peak, file=sys.stderr)
sys.exit(code)
"""


def scan(code: Path, model: Path, files: list[Path], out: Path) -> dict:
    """One scan in a fresh process: exit status, peak RSS (MiB; None after a crash), seconds, and the rows."""
    env = dict(os.environ, PYTHONPATH=str(code), TF_CPP_MIN_LOG_LEVEL="2")
    csv_path = out / "report.csv"
    csv_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", WRAPPER, "scan", *map(str, files), "--model", str(model), "--no-store",
           "--csv", str(csv_path), "-q"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.decode(errors="replace")
    peak = next((int(line.split()[1]) / 1024 for line in stderr.splitlines() if line.startswith("PEAK_KIB ")), None)
    rows = []
    if csv_path.exists():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = [{k: r.get(k) for k in ("path", "verdict", "error")} for r in csv.DictReader(fh)]
    return {"exit": proc.returncode, "peak_mib": peak, "seconds": seconds, "rows": rows,
            "stderr_tail": stderr[-300:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", type=Path, default=ROOT, help="the dfscan checkout to measure")
    ap.add_argument("--folder", type=Path, default=Path("/tmp/dfscan-hostile"))
    ap.add_argument("--boxes", type=int, default=25_000_000)
    ap.add_argument("--json", type=Path, default=HERE / "hostile_memory.json")
    ap.add_argument("--missing", type=int, default=200_000, help="names of missing files for the --from-file case")
    ap.add_argument("--no-others", action="store_true", help="only the crafted files beside a good clip")
    args = ap.parse_args()
    from bench_scan import make_model

    good, crafted = make_files(args.folder, args.boxes)
    model = args.folder / "effnet.keras"
    if not model.exists():
        make_model(model)
    scan(args.code, model, [good], args.folder)  # warm-up: converts the model once, into dfscan's cache
    alone = scan(args.code, model, [good], args.folder)
    print(f"{'good clip alone':40s} exit {alone['exit']:4d}  {alone['seconds']:6.1f} s  {alone['peak_mib']:7.0f} MiB",
          flush=True)
    results = {"good clip alone": alone}
    for name, path in crafted.items():
        r = scan(args.code, model, [good, path], args.folder)
        results[name] = r
        row = next((x for x in r["rows"] if Path(x["path"]).name == path.name), None)
        said = f"{row['verdict']}: {row['error']}" if row else f"no row ({r['stderr_tail'][-80:]!r})"
        peak = f"{r['peak_mib']:7.0f} MiB  x{r['peak_mib'] / alone['peak_mib']:.2f}" if r["peak_mib"] else "crashed"
        print(f"{name:40s} exit {r['exit']:4d}  {r['seconds']:6.1f} s  {peak:>18s}  {said[:110]}", flush=True)
    others = {} if args.no_others else other_memory_items(args.code, model, args.missing)
    args.json.write_text(json.dumps({"code": str(args.code), "results": results, "others": others}, indent=1))


def other_memory_items(code: Path, model: Path, missing: int) -> dict[str, str]:
    """Issue 27's memory items that are not one crafted file beside a good clip, each measured by its own
    bench in its own process: evaluate --kind crops on 6000-px-class crops, and --from-file naming files
    that do not exist (see those scripts for what they print)."""
    out = {}
    for name, command in (
        ("evaluate --kind crops, 30 crops of 4000x4000", ["eval_crops_memory.py", "--code", str(code)]),
        (f"--from-file naming {missing:,} missing files",
         ["from_file_missing.py", str(model), "--n", str(missing), "--code", str(code)]),
    ):
        done = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], capture_output=True, text=True)
        out[name] = (done.stdout.strip().splitlines() or [done.stderr.strip()[-300:]])[-1]
        print(f"{name:40s} {out[name]}", flush=True)
    return out


if __name__ == "__main__":
    main()
