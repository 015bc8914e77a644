"""What residual blocks per scale cost on this machine: parameters, one training step (phase joint, batch 8
of 96 px, bf16 autocast, global branch frozen) and one eager bf16 forward of a whole 720x1280 frame, for each
``--blocks`` (fine,mid,coarse). Ratios within one run are what to compare. Used for the stage 9 trial.
Usage: python benchmarks/bench_depth.py [--blocks 1 --blocks 1,1,5 ...]
"""
from __future__ import annotations

import argparse
import time

import torch

from napari_gldeblur.network import DBAFNet, NetConfig, count_parameters
from napari_gldeblur.training import trainable


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", action="append", default=[], help="e.g. 1 or 1,1,5 (default: 1 and 1,1,5)")
    p.add_argument("--width", type=int, default=16)
    args = p.parse_args()
    torch.manual_seed(0)
    for spec in args.blocks or ["1", "1,1,5"]:
        b = tuple(int(v) for v in spec.split(","))
        net = DBAFNet(NetConfig(args.width, b[0] if len(b) == 1 else b))
        opt = torch.optim.Adam(trainable(net, "joint"), 1e-4)
        x, y = torch.rand(8, 3, 96, 96), torch.rand(8, 3, 96, 96)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(x).image
            loss = (out.float() - y).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        train_s = median_time(step, 10)
        net.eval()
        frame = torch.rand(1, 3, 720, 1280)

        def forward():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                net(frame)

        forward()
        infer_s = median_time(forward, 3)
        print(f"blocks {spec}: {count_parameters(net):,} parameters, training step {train_s:.3f} s, "
              f"720p forward {infer_s:.2f} s")


if __name__ == "__main__":
    main()
