"""Can a rule applied to the network's change (output - input) stop it harming nearly sharp pictures while
keeping its gain on blurry ones? Tuned on the tuning sets (scripts/make_eval.py: scikit-image's stereo_motorcycle
and the training photographs under fresh blur, and the smoothest window of each; the network is never trained on
these pairs), never on the evaluation sets.

The network runs once per input (the blurry one, a nearly sharp copy of the target: 0.5 px Gaussian, a nearly
sharp copy of the target as a camera records it, with noise and JPEG like real sharp frames, and the 8-bit target
itself); every rule then reuses that change, clipped and quantised to 8 bits like the plugin's
output. Rules:
- fixed strength s: keep s * change (the Deblur strength slider);
- shrink t: shrink every change towards 0 by t grey levels (drops small, noise-like changes);
- gate on a per-image measure of the change: strength 0 below ``low``, 0.5 between, 1 from ``high``, with
  (low, high) the grid pair that keeps most gain on blurry input while nearly sharp input loses at most
  ``--budget`` dB on average, at least ``--min-within`` of nearly sharp pictures stay within 0.5 dB and at
  least ``--min-unchanged`` of sharp pictures come back unchanged. "change / detail" and "smoothed change /
  detail" are the plugin's measures (``strength.MEASURES``); "input blur effect" measures the input alone
  (Crété-Roffet et al. 2007, scikit-image's ``blur_effect``: 0 sharp, 1 blurred); "attention mask mean" and
  "attention mask p90" are the network's own view of where the blur is (M, eq. 1, over the frame).

With ``--write``, the gate on whichever plugin measure gains most on the tuning sets goes into the checkpoint
``--model`` names (its ``auto_strength`` and ``auto_strength_measure``), so the Deblurrer uses it for that model;
``scripts/bundle_weights.py`` keeps it.

With ``--evaluate``, the thresholds tuned here are then applied, unchanged, to the four evaluation sets: a
held-out check of the rules, never used to choose them.

Usage (from the repo root): python scripts/tune_auto_strength.py [--model lite] [--min-within 1]
  [--min-unchanged 1] [--json out.json] [--evaluate] [--write]
"""
from __future__ import annotations

import argparse
import json
from typing import Callable

import numpy as np
import torch
from evaluate import evaluation_sets, tuning_sets  # scripts/evaluate.py
from scipy.ndimage import gaussian_filter
from skimage.measure import blur_effect

from napari_gldeblur import models
from napari_gldeblur.datasets import load_pairs
from napari_gldeblur.degradations import camera, to_linear
from napari_gldeblur.evaluation import nearly_sharp
from napari_gldeblur.inference import Deblurrer
from napari_gldeblur.strength import MEASURES
from napari_gldeblur.synthesis import to_uint8

Rule = Callable[[np.ndarray], np.ndarray]  # change -> change kept
TUNING_GRAIN_SEED = 70_001  # the camera draws for the grainy nearly sharp copies
RATIO = "change / detail"  # the plugin's first measure (strength.change_ratio)


def gain_db(x: np.ndarray, kept: np.ndarray, ref: np.ndarray) -> float:
    """PSNR gain over the input of x + kept (clipped and quantised to 8 bits); for sharp input (ref is x), 0 when
    it comes back unchanged and below 0 otherwise."""
    out = np.round(np.clip(x + kept, 0, 1) * 255) / 255
    return float(10 * np.log10(max(np.mean((x - ref) ** 2), 1e-12) / max(np.mean((out - ref) ** 2), 1e-12)))


def measures(x: np.ndarray, change: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Per-image measures of how much the network changed the picture (grey levels, or a ratio), and of its
    attention mask ``mask``."""
    mag = np.abs(change).mean(-1) * 255
    gy, gx = np.gradient(x.mean(-1) * 255)
    return {"p99 change": float(np.percentile(mag, 99)),
            "p99.9 change": float(np.percentile(mag, 99.9)),
            "mean change": float(mag.mean()),
            "p99 change / p99 gradient": float(np.percentile(mag, 99) / max(np.percentile(np.hypot(gx, gy), 99), 1e-3)),
            "p99 smoothed change": float(np.percentile(gaussian_filter(mag, 2), 99)),
            "input blur effect": float(blur_effect(x.mean(-1))),
            "attention mask mean": float(mask.mean()), "attention mask p90": float(np.percentile(mask, 90)),
            **{name: fn(*(torch.from_numpy(a).permute(2, 0, 1) for a in (x, x + change))) for name, fn in MEASURES.items()}}


def network_changes(d: Deblurrer, pairs, grainy: bool = True) -> tuple[list, np.ndarray, list]:
    """(8-bit input, network change, target) for each blurry input, a nearly sharp copy of its target and the
    8-bit target itself (its own reference), with the kind of each input ("blurry", "nearly sharp", "sharp");
    ``grainy`` adds the nearly sharp copy of the target as a camera records it (tuning only); and the
    network's attention mask for each."""
    rows, kinds, masks = [], [], []
    for i, (blur, sharp) in enumerate(pairs):
        inputs = [("blurry", blur, sharp), ("nearly sharp", nearly_sharp(sharp), sharp), ("sharp", sharp, None)]
        if grainy:
            rec = to_uint8(recorded(sharp, i)).astype(np.float32) / 255
            inputs.insert(2, ("nearly sharp", nearly_sharp(rec), rec))
        for kind, x, ref in inputs:
            u8 = to_uint8(x)
            x = u8.astype(np.float32) / 255
            r = d(u8, features=True, strength=1.0)
            rows.append((x, r.image.astype(np.float32) / 255 - x, x if ref is None else ref))
            kinds.append(kind)
            masks.append(r.attention)
    return rows, np.array(kinds), masks


def recorded(sharp: np.ndarray, seed: int) -> np.ndarray:
    """A sharp picture as a camera records it: with sensor noise and JPEG (degradations.camera), as real sharp
    frames are; their 0.5 px-blurred copies are the nearly sharp input a gate meets in real footage."""
    return camera(to_linear(sharp), np.random.default_rng([TUNING_GRAIN_SEED, seed]))


def gate(values: np.ndarray, low: float, high: float, at: dict) -> np.ndarray:
    """Per-image gains of the gate: strength 0 up to ``low``, 0.5 up to ``high``, 1 from there."""
    return np.where(values >= high, at[1.0], np.where(values > low, at[0.5], 0.0))


def summary(gains: np.ndarray, kinds: np.ndarray) -> dict[str, float]:
    blurry, near = gains[kinds == "blurry"], gains[kinds == "nearly sharp"]
    return {"blurry_mean_db": float(blurry.mean()), "blurry_improved": float(np.mean(blurry > 0)),
            "nearly_sharp_mean_db": float(near.mean()), "nearly_sharp_median_db": float(np.median(near)),
            "nearly_sharp_within_0.5db": float(np.mean(near >= -0.5)),
            "sharp_unchanged": float(np.mean(gains[kinds == "sharp"] == 0))}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="lite")
    p.add_argument("--data", action="append", default=[], help="pairs (default: the sets in data/tuning)")
    p.add_argument("--budget", type=float, default=0.0, help="allowed mean loss (dB) on nearly sharp input")
    p.add_argument("--min-within", type=float, default=0.0,
                   help="least share of nearly sharp pictures that must stay within 0.5 dB (0-1)")
    p.add_argument("--min-unchanged", type=float, default=0.0,
                   help="least share of sharp pictures that must come back unchanged (0-1)")
    p.add_argument("--json", default=None)
    p.add_argument("--evaluate", action="store_true", help="then apply the tuned gates to the evaluation sets")
    p.add_argument("--write", action="store_true", help="store the tuned change/detail gate in the --model checkpoint")
    args = p.parse_args()
    if args.write and args.model in ("lite", "paper"):
        p.error("--write needs a checkpoint file as --model (bundle it afterwards with scripts/bundle_weights.py)")
    pairs = load_pairs(args.data or [r for roots in tuning_sets().values() for r in roots])
    d = Deblurrer(args.model)
    rows, kinds, masks = network_changes(d, pairs)
    print(f"{len(pairs)} tuning pairs, {d!r}")

    def apply(rule: Rule, rows=rows) -> np.ndarray:
        return np.array([gain_db(x, rule(c), ref) for x, c, ref in rows])

    at = {s: apply(lambda c: s * c) for s in (1.0, 0.75, 0.5)}  # gains at fixed strengths, reused by the gates
    results = {f"fixed strength {s}": summary(g, kinds) for s, g in at.items()}
    for t in (1, 2, 4):
        results[f"shrink {t} grey levels"] = summary(apply(lambda c: np.sign(c) * np.maximum(np.abs(c) - t / 255, 0)),
                                                     kinds)
    per_image = [measures(x, c, m) for (x, c, _), m in zip(rows, masks)]
    report_inputs(np.array([m[RATIO] for m in per_image]), kinds)
    gates, tuned_gain = {}, {}  # measure -> (low, high) tuned thresholds, and their mean gain on blurry input
    for name in per_image[0]:
        values = np.array([m[name] for m in per_image])
        best = None
        grid = np.unique(np.percentile(values, np.linspace(0, 100, 101)))
        for i, low in enumerate(grid):
            for high in grid[i + 1:]:
                s = summary(gate(values, low, high, at), kinds)
                ok = (s["nearly_sharp_mean_db"] >= -args.budget and s["nearly_sharp_within_0.5db"] >= args.min_within
                      and s["sharp_unchanged"] >= args.min_unchanged)
                if ok and (best is None or s["blurry_mean_db"] > best[0]["blurry_mean_db"]):
                    best = (s, float(low), float(high))
        if best is None:
            results[f"gate on {name}: no thresholds meet the constraints"] = None
            continue
        results[f"gate on {name} (0 below {best[1]:.4g}, 0.5 between, 1 from {best[2]:.4g})"] = best[0]
        gates[name], tuned_gain[name] = (best[1], best[2]), best[0]["blurry_mean_db"]
    report(results)
    if args.write:
        usable = [name for name in MEASURES if name in gates]  # the measures the plugin computes
        if not usable:
            raise SystemExit("no gate on a plugin measure meets the constraints: nothing written")
        best = max(usable, key=lambda name: tuned_gain[name])  # the most gain on the tuning sets
        ckpt = models.read_checkpoint(args.model)
        ckpt["auto_strength"], ckpt["auto_strength_measure"] = list(gates[best]), best
        models.write_checkpoint(args.model, ckpt)
        print(f"wrote auto-strength gate {gates[best]} on {best} into {args.model}")
    held_out = {}
    for set_name, roots in (evaluation_sets().items() if args.evaluate else ()):
        print(f"## {set_name}: the rules above with their tuned thresholds, unchanged")
        ev_rows, ev_kinds, ev_masks = network_changes(d, load_pairs(roots), grainy=False)
        ev_at = {s: apply(lambda c: s * c, ev_rows) for s in (1.0, 0.5)}
        found = {f"fixed strength {s}": summary(g, ev_kinds) for s, g in ev_at.items()}
        ev_measures = [measures(x, c, m) for (x, c, _), m in zip(ev_rows, ev_masks)]
        for name, (low, high) in gates.items():
            values = np.array([m[name] for m in ev_measures])
            found[f"gate on {name} ({low:.4g}, {high:.4g})"] = summary(gate(values, low, high, ev_at), ev_kinds)
        report(found)
        held_out[set_name] = found
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "pairs": len(pairs), "budget_db": args.budget,
                       "min_within_0.5db": args.min_within, "min_unchanged": args.min_unchanged,
                       "thresholds": gates, "rules": results, "evaluation_sets": held_out}, f, indent=2)


def report_inputs(ratios: np.ndarray, kinds: np.ndarray) -> None:
    """The plugin's measure by kind of tuning input; the nearly sharp copies alternate clean, grainy
    (``network_changes``), and the largest ratio among them and the sharp inputs bounds the gate from below."""
    near = np.flatnonzero(kinds == "nearly sharp")
    labels = kinds.astype(object)
    labels[near[0::2]], labels[near[1::2]] = "clean nearly sharp", "grainy nearly sharp"
    for label in ("blurry", "clean nearly sharp", "grainy nearly sharp", "sharp"):
        v = ratios[labels == label]
        print(f"{RATIO} of {label} input: median {np.median(v):.2f}, largest {v.max():.2f}")


def report(results: dict) -> None:
    for name, s in results.items():
        if s is None:
            print(name)
            continue
        print(f"{name}: blurry {s['blurry_mean_db']:+.2f} dB ({s['blurry_improved']:.0%} improve); nearly sharp mean "
              f"{s['nearly_sharp_mean_db']:+.2f}, median {s['nearly_sharp_median_db']:+.2f}, "
              f"{s['nearly_sharp_within_0.5db']:.0%} within 0.5 dB or better; sharp {s['sharp_unchanged']:.0%} unchanged")


if __name__ == "__main__":
    main()
