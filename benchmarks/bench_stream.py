"""The online degradation stream's share of a training step: seconds per batch cut by
``datasets.DegradationStream`` against seconds per optimizer step of the recipe's network, in one run.

    python benchmarks/bench_stream.py [--recipe recipes/bundled.toml] [--batches 20]

On a CPU the stream runs in the training process (workers would take the trainer's cores), so its share is
what the trainer loses; on a GPU, ``--workers`` processes cut batches ahead of the steps.
"""
from __future__ import annotations

import argparse
import time

import torch

from napari_gldeblur.training import (
    TrainConfig,
    _Wrapped,
    autocast_dtype,
    content_pool,
    initial_model,
    load_recipe,
    online_data,
    optimizer_step,
    trainable,
)


def seconds_per_batch(stream, batch: int, batches: int) -> float:
    for _ in range(10):  # fills the dead-leaves pool (8 pictures, then refreshed at 5% of draws)
        stream.batch(batch)
    t = time.perf_counter()
    for _ in range(batches):
        stream.batch(batch)
    return (time.perf_counter() - t) / batches


def seconds_per_step(config: TrainConfig, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    net, _ = initial_model(config)
    amp = autocast_dtype(net.eval(), "cpu", config.precision)
    module = _Wrapped(net.train(), "joint", config.loss)
    opt = torch.optim.Adam(trainable(net, "joint"), lr=1e-4)
    for _ in range(2):
        optimizer_step(module, opt, x, y, "cpu", amp)
    t = time.perf_counter()
    for _ in range(steps):
        optimizer_step(module, opt, x, y, "cpu", amp)
    return (time.perf_counter() - t) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="recipes/bundled.toml")
    p.add_argument("--batches", type=int, default=20)
    args = p.parse_args()
    config = load_recipe(args.recipe)
    sources = content_pool(config)
    rows = {}
    for phase in ("global", "joint"):
        stream, _ = online_data(config, phase, sources, seed=1)
        rows[phase] = seconds_per_batch(stream, config.batch, args.batches)
    x, y = stream.batch(config.batch)
    step = seconds_per_step(config, x, y, args.batches)
    print(f"{config.batch} x {config.patch} px, {torch.get_num_threads()} threads: optimizer step (joint) "
          f"{step * 1e3:.0f} ms")
    for phase, s in rows.items():
        print(f"stream for phase {phase}: {s * 1e3:.0f} ms per batch, {s / (s + step):.0%} of a step")


if __name__ == "__main__":
    main()
