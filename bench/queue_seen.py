"""Seen-before lookups against a large store: 100,000 synthetic fingerprints (docs/queues.md).

    python bench/queue_seen.py                        # 100,000 videos, 1,000 lookups
    python bench/queue_seen.py --videos 20000 --lookups 200

Each synthetic video has 10 frame hashes: a random 64-bit base with 0-6 bits flipped per frame (the
frames of one clip look alike, as real pHashes do). Half of the lookups are copies of stored videos
with 1-4 bits of each frame flipped (they must be found), half are new random videos (they must
not). Each lookup is `dfscan.queue.seen.find_seen` on the store's band index, timed alone; the
median and the 99th percentile are written to bench/queue_seen.json, with the store's size.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

FRAMES = 10


def video(rng: random.Random) -> list[int]:
    base = rng.getrandbits(64)
    return [_flip(rng, base, rng.randint(0, 6)) for _ in range(FRAMES)]


def _flip(rng: random.Random, h: int, bits: int) -> int:
    for b in rng.sample(range(64), bits):
        h ^= 1 << b
    return h


def fill(db, n: int, rng: random.Random) -> list[list[int]]:
    from dfscan.queue.fingerprint import band_keys, pack

    videos = [video(rng) for _ in range(n)]
    with db.db as conn:
        for i, hashes in enumerate(videos):
            sha = f"{i:064x}"
            fid = conn.execute("INSERT INTO fingerprints (sha256, path, verdict, hashes, updated) "
                               "VALUES (?, ?, ?, ?, ?)", (sha, f"/queue/{i}.mp4", "REAL", pack(hashes), float(i))).lastrowid
            conn.executemany("INSERT INTO fingerprint_bands VALUES (?, ?)", [(k, fid) for k in band_keys(hashes)])
    return videos


def main() -> None:
    from dfscan.queue.db import QueueDB
    from dfscan.queue.seen import find_seen
    from dfscan.store import ResultStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=HERE / "queue_seen.json")
    args = ap.parse_args()
    rng = random.Random(25)
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(Path(tmp) / "store.sqlite", strict=True)
        db = QueueDB(store)
        start = time.perf_counter()
        videos = fill(db, args.videos, rng)
        fill_s = time.perf_counter() - start
        times, found, false = [], 0, 0
        for i in range(args.lookups):
            copy = i % 2 == 0
            target = rng.randrange(args.videos)
            hashes = [_flip(rng, h, rng.randint(1, 4)) for h in videos[target]] if copy else video(rng)
            t = time.perf_counter()
            seen = find_seen(db, hashes)
            times.append(time.perf_counter() - t)
            if copy:
                found += seen is not None and seen["sha256"] == f"{target:064x}"
            else:
                false += seen is not None
        store.close()  # the WAL folded back in: the file's own size
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    times.sort()
    result = {"machine": platform.platform(), "videos": args.videos, "frames_per_video": FRAMES,
              "lookups": args.lookups, "fill_s": round(fill_s, 1), "store_mb": round(size / 1e6, 1),
              "median_ms": round(statistics.median(times) * 1e3, 3),
              "p99_ms": round(times[int(0.99 * (len(times) - 1))] * 1e3, 3),
              "copies_found": found / (args.lookups - args.lookups // 2),
              "false_matches": false, "new_videos": args.lookups // 2}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
