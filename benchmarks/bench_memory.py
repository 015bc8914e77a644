"""Peak memory of deblurring a big uint16 TIFF stack file to file (``batch.deblur_file``, what ``gldeblur
deblur`` runs): the stack is read one page per frame and written one page per frame, so the peak above the
starting RSS should not grow with the stack length.

    python benchmarks/bench_memory.py                       # 2 GB stack (1000 x 1024 x 1024), bundled lite
    python benchmarks/bench_memory.py --model tiny          # same stack, a width-4 random net (minutes, not an hour)

Prints the stack size, the RSS after loading the model, the peak RSS while deblurring and the time.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_stack(path: Path, frames: int, side: int) -> int:
    from napari_gldeblur.imageio import TiffFrames

    rng = np.random.default_rng(0)
    base = (rng.random((side, side)) * 4095).astype(np.uint16)
    out = TiffFrames(path, (frames, side, side), np.uint16)
    for i in range(frames):
        out[i] = np.roll(base, i, axis=1)
    out.close()
    return frames * side * side * 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--model", default="lite", help="lite, tiny (width-4 random net) or a checkpoint")
    args = p.parse_args(argv)

    import torch

    from napari_gldeblur.batch import deblur_file
    from napari_gldeblur.inference import Deblurrer
    from napari_gldeblur.network import DBAFNet, NetConfig

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in" / "stack.tif"
        size = make_stack(src, args.frames, args.side)
        torch.manual_seed(0)
        model = DBAFNet(NetConfig(width=4, blocks=1)) if args.model == "tiny" else args.model
        d = Deblurrer(model, device="cpu")
        d(np.zeros((args.side, args.side), np.uint16), features=False)  # warm up: allocator pools, bf16 check
        start = rss_mb()
        t0 = time.perf_counter()
        deblur_file(d, src, Path(tmp) / "out", strength=1.0)
        seconds = time.perf_counter() - t0
        peak = peak_mb()
    print(f"stack {args.frames} x {args.side} x {args.side} uint16 = {size / 2**30:.2f} GiB, model {args.model}, "
          f"{d.precision}: RSS {start:.0f} MiB at start, peak {peak:.0f} MiB ({peak - start:+.0f} MiB), "
          f"{seconds:.0f} s ({seconds / args.frames:.2f} s/frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
