"""Fine-tuning on a user's own pairs of one blur: how much it gains, what it costs elsewhere, how long it takes.

The case: 12 pairs of 192 px (crops of scikit-image pictures) under one blur the bundled model handles poorly,
a 17 px diagonal motion streak with a little noise, saved as 8-bit PNGs like a user's; 24 held-out pairs of
the same blur from other pictures (scikit-image's held-out chelsea, coffee, rocket). Fine-tunes the bundled
model (or ``--model``) as ``gldeblur train --data PAIRS --model lite --steps N -o ft.pt`` does (its fine-tuning
defaults, ``finetune.FINE_TUNE``, plus ``--set`` overrides), then reports, against that start model:

* the gain on the held-out pairs of the user's blur (strength 1, and auto);
* the change on sharp held-out pictures (input = target);
* the change on the general evaluation sets (``data/eval/*`` from ``scripts/make_eval.py``, when present);
* the wall time of the fine-tune;
* for reference, a classical Wiener filter given the kernel the fine-tune estimates from the pairs.

``--steps`` with no values measures only the references (bundled model, Wiener filter).

    python benchmarks/bench_finetune.py --steps 300 1000
    python benchmarks/bench_finetune.py --steps 300 --set phase=end2end --set lr=2e-4
    python benchmarks/bench_finetune.py --steps 300 --model runs/candidate.pt   # from another start model
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def user_pairs(names, count: int, size: int, seed: int, kernel: np.ndarray, noise: float = 0.01):
    """``count`` (blurry, sharp) 8-bit pairs of ``size`` px cropped from scikit-image pictures ``names``."""
    from napari_gldeblur.degradations import blur
    from napari_gldeblur.synthesis import skimage_images

    images = [im for im in skimage_images(names) if min(im.shape[:2]) >= size + 32]
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        im = images[i % len(images)]
        y, x = (int(rng.integers(16, n - size - 16)) for n in im.shape[:2])
        sharp = im[y - 16:y + size + 16, x - 16:x + size + 16]
        blurred = blur(sharp, kernel)[16:-16, 16:-16] + rng.normal(0, noise, (size, size, 3))
        q = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
        pairs.append((q(blurred), q(sharp[16:-16, 16:-16])))
    return pairs


def write_pairs(folder: Path, pairs) -> Path:
    from napari_gldeblur.imageio import write_image_file

    for i, (b, s) in enumerate(pairs):
        write_image_file(folder / "blur" / f"{i:03d}.png", b)
        write_image_file(folder / "sharp" / f"{i:03d}.png", s)
    return folder


def mean_psnr(deblurrer, pairs, strength) -> float:
    from napari_gldeblur.evaluation import psnr

    scores = [psnr(deblurrer(b, features=False, strength=strength).image / 255.0, s / 255.0) for b, s in pairs]
    return float(np.mean(np.minimum(scores, 60.0)))  # an exact copy is "60 dB", not infinity


def eval_sets(deblurrer) -> dict[str, float]:
    """Mean output PSNR on the general evaluation sets at the default (auto) strength, where present."""
    from napari_gldeblur.datasets import load_pairs
    from napari_gldeblur.evaluation import psnr

    out = {}
    for name in ("uniform", "dynamic"):
        folder = ROOT / "data" / "eval" / name
        if (folder / "blur").is_dir():
            pairs = load_pairs([folder])
            out[name] = float(np.mean([psnr(deblurrer(b, features=False, strength="auto").image, s) for b, s in pairs]))
    return out


def measure(model, held_out, sharp) -> dict:
    from napari_gldeblur.inference import Deblurrer

    d = Deblurrer(model, device="cpu")
    return {"blur_s1": mean_psnr(d, held_out, 1.0), "blur_auto": mean_psnr(d, held_out, "auto"),
            "sharp_s1": mean_psnr(d, sharp, 1.0), "sharp_auto": mean_psnr(d, sharp, "auto"), **eval_sets(d)}


def wiener_reference(mine, held_out, balances=(0.01, 0.03, 0.1)) -> dict[str, float]:
    """Mean PSNR on the held-out pairs of a Wiener filter fed the kernel estimated from the user's pairs."""
    from napari_gldeblur.degradations import estimate_kernel
    from napari_gldeblur.evaluation import psnr, wiener_deconvolve

    kernel = estimate_kernel([(b / np.float32(255), s / np.float32(255)) for b, s in mine])
    return {str(b): float(np.mean([psnr(wiener_deconvolve(x / 255.0, kernel, b), y / 255.0) for x, y in held_out]))
            for b in balances}


def parse_value(text: str):
    """A --set value: a number, true/false, a JSON list (``deepen=[1,1,3]``) or else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="*", default=[300, 1000])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a TrainConfig field to override")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--model", default="lite", help="the start model (default: the bundled lite); gains are over it")
    args = p.parse_args(argv)

    from napari_gldeblur.degradations import line_kernel
    from napari_gldeblur.evaluation import psnr
    from napari_gldeblur.finetune import FINE_TUNE
    from napari_gldeblur.synthesis import HELD_OUT, TRAIN_IMAGES
    from napari_gldeblur.training import TrainConfig, train

    known = {f.name for f in fields(TrainConfig)}
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in known:
            p.error(f"--set {key}: not a TrainConfig field")
        overrides[key] = parse_value(value)
    kernel = line_kernel(17.0)  # diagonal
    mine = user_pairs(TRAIN_IMAGES, 12, 192, seed=1, kernel=kernel)
    held_out = user_pairs(HELD_OUT, 24, 192, seed=2, kernel=kernel)
    sharp = [(s, s) for _, s in held_out[:12]]
    report = {"case": "12 pairs, 192 px, 17 px diagonal streak", "overrides": overrides,
              "start_model": args.model,
              "start": measure(args.model, held_out, sharp), "runs": []}
    b = report["start"]
    start = "bundled" if args.model == "lite" else args.model
    sets = {k: round(v, 2) for k, v in b.items() if k in ("uniform", "dynamic")}
    print(f"{start}: held-out blur {b['blur_s1']:.2f} dB (s=1) {b['blur_auto']:.2f} (auto); "
          f"sharp {b['sharp_s1']:.2f} / {b['sharp_auto']:.2f}; eval sets {sets}")
    inputs = float(np.mean([psnr(x / 255.0, y / 255.0) for x, y in held_out]))
    print(f"held-out blurry input: {inputs:.2f} dB")
    report["wiener"] = wiener_reference(mine, held_out)
    print("Wiener filter with the estimated kernel, gain over the input: "
          + ", ".join(f"balance {b}: {g - inputs:+.2f} dB" for b, g in report["wiener"].items()))
    with tempfile.TemporaryDirectory() as tmp:
        data = write_pairs(Path(tmp) / "mine", mine)
        for steps in args.steps:
            out = Path(tmp) / f"ft{steps}.pt"
            cfg = TrainConfig(**{**FINE_TUNE, **overrides, "data": [str(data)], "model": args.model, "steps": steps,
                                 "out": str(out)})
            t0 = time.perf_counter()
            for _ in train(cfg, resume=False):
                pass
            seconds = time.perf_counter() - t0
            m = measure(str(out), held_out, sharp)
            run = {"steps": steps, "seconds": seconds, **m}
            report["runs"].append(run)
            extra = "".join(f", {k} {m[k] - b[k]:+.2f}" for k in ("uniform", "dynamic") if k in m)
            print(f"{steps} steps ({seconds:.0f} s): held-out gain over {start} {m['blur_s1'] - b['blur_s1']:+.2f} dB "
                  f"(s=1) {m['blur_auto'] - b['blur_auto']:+.2f} (auto); sharp {m['sharp_s1'] - b['sharp_s1']:+.2f} / "
                  f"{m['sharp_auto'] - b['sharp_auto']:+.2f}; eval sets{extra or ' (none: run scripts/make_eval.py)'}",
                  flush=True)
    report["input_psnr"] = inputs
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
