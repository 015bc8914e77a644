"""What residual blocks per scale cost on this machine: parameters, training steps per second (the step
``gldeblur train`` takes in phase joint, batch 8 of 96 px, bf16; ``bench_training.steps_per_second``) and the
median time of ``Deblurrer`` on a 720x1280 frame (as the plugin runs it; ``bench_inference.bench_model``), for
each ``--blocks`` (fine,mid,coarse). Random weights: speed does not depend on them. For choosing model sizes;
``--precision fp32`` times inference as a CPU without fast bf16 (e.g. AVX2 only) runs it.
Usage: python benchmarks/bench_depth.py [--blocks 1 --blocks 1,1,3 ...] [--width 24] [--precision auto|fp32]
"""
from __future__ import annotations

import argparse

from bench_inference import bench_model  # benchmarks/: the same timings as the other benchmarks
from bench_training import steps_per_second

from napari_gldeblur.network import DBAFNet, NetConfig, count_parameters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", action="append", default=[], help="e.g. 1 or 1,1,5 (default: 1 and 1,1,5)")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--runs", type=int, default=5, help="timed Deblurrer calls (after one warm-up call)")
    p.add_argument("--precision", default="auto", help="the Deblurrer's precision: auto (bf16 where fast) or fp32")
    args = p.parse_args()
    for spec in args.blocks or ["1", "1,1,5"]:
        b = tuple(int(v) for v in spec.split(","))
        config = NetConfig(args.width, b[0] if len(b) == 1 else b)
        train = steps_per_second(config, "cpu", 8, 96, precision="bf16")
        net = DBAFNet(config)
        infer = bench_model(net, "cpu", (720, 1280), args.runs, features=False, precision=args.precision)
        print(f"blocks {spec}: {count_parameters(net):,} parameters, {train['steps_per_s']:.2f} training "
              f"steps/s, 720p {infer['median_s']:.3f} s ({infer['precision']}, tile {infer['tile']})", flush=True)


if __name__ == "__main__":
    main()
