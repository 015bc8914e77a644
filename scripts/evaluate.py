"""PSNR/SSIM table: blurry input, classical baselines and our models on the held-out sets (scripts/make_eval.py)
and on ../shared/data/gopro_frames (real GoPro frames, Nah et al. 2017; evaluation only, never training);
``--samples`` adds the plugin's two sample scenes (the moving object is ``gldeblur deblur --sample``'s), one set each.

Usage (from the repo root): python scripts/evaluate.py --model "DBAF-Net (bundled)=lite" --model "half strength=lite@0.5" ...
       [--data-root data] [--json results.json] [--no-baselines] [--merge earlier.json] [--limit N] [--only uniform]
       [--samples] (with --only sample: the samples alone)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from napari_gldeblur.datasets import load_pairs, rgb_unit
from napari_gldeblur.evaluation import BASELINES, evaluate, model_restorer, nearly_sharp, psnr

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gopro_frames"


def evaluation_sets(data_root: str = "data", gopro: str = str(SHARED)) -> dict[str, list[str]]:
    """The evaluation sets by name: held-out photographs under fresh uniform blur and fresh dynamic scenes
    (scripts/make_eval.py), and real GoPro frames."""
    return {"held-out uniform blur": [f"{data_root}/eval/uniform"],
            "held-out dynamic scenes": [f"{data_root}/eval/dynamic"],
            "GoPro frames (real)": [gopro]}


def tuning_sets(data_root: str = "data") -> dict[str, list[str]]:
    """The tuning sets (scripts/make_eval.py): neither training nor evaluation data, for choosing settings."""
    return {f"tuning {k}": [f"{data_root}/tuning/{k}"] for k in ("uniform", "dynamic", "smooth")}


def sample_sets() -> dict[str, list]:
    """The plugin's two sample scenes (``_sample_data``), one (blurry, sharp) pair of floats in [0, 1] each."""
    from napari_gldeblur._sample_data import dynamic_scene, global_blur

    sets = {}
    for make in (dynamic_scene, global_blur):
        (sharp, _, _), (blur, meta, _) = make()
        label = meta["name"].partition("(")[2].rstrip(")")  # "moving object", "camera shake"
        sets[f"sample: {label}"] = [(rgb_unit(blur, 0, 255), rgb_unit(sharp, 0, 255))]  # as read_pair maps 8 bits
    return sets


def restorer_for(model_spec: str):
    """``MODEL[@STRENGTH]`` (lite, paper or a checkpoint, at a Deblur strength: default 1, or auto) as a restorer."""
    model, _, strength = model_spec.partition("@")
    return model_restorer(model, strength=strength or 1.0)  # the Deblurrer checks it (inference.check_strength)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", action="append", default=[],
                   help="NAME=lite|paper|CKPT[@STRENGTH] (STRENGTH: the Deblur strength, 0-1, default 1)")
    p.add_argument("--data-root", default="data")
    p.add_argument("--gopro", default=str(SHARED))
    p.add_argument("--json", default=None)
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--only", action="append", default=[], help="evaluate only the sets whose name contains this")
    p.add_argument("--limit", type=int, default=0, help="use only the first N pairs of each set")
    p.add_argument("--merge", default=None, help="JSON from an earlier run (e.g. the baselines) to include")
    p.add_argument("--samples", action="store_true", help="also the two sample scenes, one set each")
    args = p.parse_args()
    loaders: dict[str, Callable[[], list]] = {k: partial(load_pairs, v)
                                              for k, v in evaluation_sets(args.data_root, args.gopro).items()}
    if args.samples:
        loaders |= {k: (lambda v=v: v) for k, v in sample_sets().items()}
    sets = {k: v for k, v in loaders.items() if not args.only or any(o in k for o in args.only)}
    methods = {"blurry input": None}
    if not args.no_baselines:
        methods |= BASELINES
    for spec in args.model:
        name, _, model = spec.partition("=")
        methods[name] = restorer_for(model)
    results: dict = json.loads(Path(args.merge).read_text()) if args.merge else {}
    for set_name, load in sets.items():
        pairs = load()
        if args.limit:
            pairs = pairs[: args.limit]
        for m_name, fn in methods.items():
            t = time.perf_counter()
            r = evaluate(fn, pairs)
            r["seconds"] = time.perf_counter() - t
            results.setdefault(set_name, {})[m_name] = r
            out = (r.get("output_psnr", r["input_psnr"]), r.get("output_ssim", r["input_ssim"]))
            print(f"{set_name:22s} {m_name:42s} n={r['n']:3d} PSNR {out[0]:6.2f} SSIM {out[1]:.4f}"
                  f" ({r['seconds']:.0f} s)", file=sys.stderr, flush=True)
        # Sharp input must not be damaged: PSNR of model(sharp) against sharp, and the change in PSNR on
        # nearly sharp input (a 0.5 px Gaussian blur, ~40 dB), where "within 0.5 dB" is well defined.
        for spec in args.model:
            name, _, model = spec.partition("=")
            fn = methods[name]
            vals = [psnr(fn(s), s) for _, s in pairs]
            results[set_name][name]["sharp_in_psnr"] = float(np.mean(vals))
            near = [(nearly_sharp(s), s) for _, s in pairs]
            results[set_name][name]["nearly_sharp_in_psnr"] = float(np.mean([psnr(n, s) for n, s in near]))
            results[set_name][name]["nearly_sharp_out_psnr"] = float(np.mean([psnr(fn(n), s) for n, s in near]))
    print(table(results))
    print()
    print(sharp_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def table(results: dict) -> str:
    sets = list(results)
    methods = list(dict.fromkeys(m for r in results.values() for m in r))
    head = "| method | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " |"
    lines = [head, "|" + "---|" * (len(sets) + 1)]
    for m in methods:
        cells = []
        for s in sets:
            r = results[s][m]
            ps, ss = r.get("output_psnr", r["input_psnr"]), r.get("output_ssim", r["input_ssim"])
            gain = "" if m == "blurry input" else f" ({ps - r['input_psnr']:+.2f})"
            cells.append(f"{ps:.2f}{gain} / {ss:.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sharp_table(results: dict) -> str:
    """Models on sharp input: PSNR of model(sharp) vs sharp, and nearly sharp input before -> after."""
    sets = list(results)
    methods = [m for m in dict.fromkeys(m for r in results.values() for m in r)
               if all("sharp_in_psnr" in results[s].get(m, {}) for s in sets)]
    lines = ["| model | " + " | ".join(f"{s}: sharp in / nearly sharp in -> out" for s in sets) + " |",
             "|" + "---|" * (len(sets) + 1)]
    for m in methods:
        cells = [f"{r['sharp_in_psnr']:.2f} / {r['nearly_sharp_in_psnr']:.2f} -> {r['nearly_sharp_out_psnr']:.2f}"
                 f" ({r['nearly_sharp_out_psnr'] - r['nearly_sharp_in_psnr']:+.2f})"
                 for r in (results[s][m] for s in sets)]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
