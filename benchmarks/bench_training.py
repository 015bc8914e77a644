"""Training speed: optimizer steps per second of phase joint (per-image PSNR loss, as the bundled model's
later stages) for given network sizes, batches and patches, on one device.

    python benchmarks/bench_training.py --device cuda --json training_cuda.json
    python benchmarks/bench_training.py --device cpu --case lite:8:96     # the CPU recipe of the bundled model
    python benchmarks/bench_training.py --device cpu --case lite:4:192 --layout channels_last --layout contiguous

Random tensors stand in for the data, so this is the network's own rate: patch cutting runs beside it in
``gldeblur train --workers`` processes. Every number is measured in this run; nothing is copied in.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

DEFAULT_CASES = ("lite:8:96", "lite:64:128", "paper:16:256")


def steps_per_second(model: str, device: str, batch: int, patch: int, precision: str = "auto",
                     steps: int = 20, warmup: int = 5, layout: str = "training") -> dict:
    """Steps per second over ``steps`` timed optimizer steps after ``warmup`` untimed ones; ``layout``:
    "training" (the memory format `gldeblur train` uses, ``devices.memory_format``), "channels_last" or
    "contiguous"."""
    from napari_gldeblur.devices import memory_format
    from napari_gldeblur.network import build
    from napari_gldeblur.training import _Wrapped, autocast_dtype, optimizer_step, trainable

    fmt = {"training": memory_format(device), "channels_last": torch.channels_last,
           "contiguous": torch.contiguous_format}[layout]
    net = build(model).to(device, memory_format=fmt)
    amp = autocast_dtype(net.eval(), device, precision)
    module = _Wrapped(net.train(), "joint", "psnr")
    opt = torch.optim.Adam(trainable(net, "joint"), lr=1e-4)  # the global branch stays frozen, as in training
    x = torch.rand(batch, 3, patch, patch, device=device).contiguous(memory_format=fmt)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).contiguous(memory_format=fmt)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    for _ in range(warmup):
        optimizer_step(module, opt, x, y, device, amp)
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        optimizer_step(module, opt, x, y, device, amp)  # the step `gldeblur train` takes
    sync()
    rate = steps / (time.perf_counter() - t)
    res = {"model": model, "batch": batch, "patch": patch, "device": device, "layout": layout,
           "precision": "bf16" if amp is not None else "fp32", "steps_per_s": rate,
           "patches_per_s": rate * batch}
    if device.startswith("cuda"):
        res["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--case", action="append",
                   help="MODEL:BATCH:PATCH (repeatable; default: %s)" % ", ".join(DEFAULT_CASES))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--layout", action="append", choices=("training", "channels_last", "contiguous"),
                   help="memory format (repeatable; default: training's own)")
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args(argv)
    machine = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.device.startswith("cuda"):
        machine["gpu"] = torch.cuda.get_device_name(0)
    results = []
    for case in args.case or DEFAULT_CASES:
        model, batch, patch = case.split(":")
        for layout in args.layout or ["training"]:
            r = steps_per_second(model, args.device, int(batch), int(patch), steps=args.steps, layout=layout)
            results.append(r)
            print(f"{model:6s} batch {r['batch']:3d} x {r['patch']}^2 on {args.device} ({r['precision']}, {layout}): "
                  f"{r['steps_per_s']:.1f} steps/s, {r['patches_per_s']:.0f} patches/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
