"""``gldeblur`` command line: synth, train, eval, deblur. Errors are one line on stderr + exit code 1."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gldeblur", description="Global-local blur disentangling network")
    sub = p.add_subparsers(dest="command", required=True)
    _add_synth(sub.add_parser("synth", help="make blurry/sharp training pairs from sharp images"))
    _add_train(sub.add_parser("train", help="train or fine-tune with the paper's phases"))
    _add_eval(sub.add_parser("eval", help="PSNR/SSIM of input and output on blur/sharp pairs"))
    _add_deblur(sub.add_parser("deblur", help="deblur image files or folders"))
    return p


# --- synth ----------------------------------------------------------------------------------------
def _add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("sharp_dir", nargs="?", help="folder of sharp images (default: scikit-image's bundled images)")
    p.add_argument("-o", "--out", required=True, help="writes OUT/blur/NAME.png and OUT/sharp/NAME.png")
    p.add_argument("--kind", choices=["global", "dynamic", "mixed"], default="mixed")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--held-out", action="store_true", help="use the held-out scikit-image images (evaluation sets)")
    p.add_argument("--procedural", type=float, default=0.25, help="fraction of pairs made from generated content")
    p.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import synthesis
    from .datasets import IMAGE_EXTS, read_image

    if args.count < 1 or args.size < 16:
        raise ValueError("--count must be >= 1 and --size >= 16")
    if args.sharp_dir:
        files = sorted(f for f in Path(args.sharp_dir).iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise ValueError(f"no images in {args.sharp_dir}")
        sources = [read_image(f) for f in files]
    else:
        sources = synthesis.skimage_images(synthesis.HELD_OUT if args.held_out else synthesis.TRAIN_IMAGES)
    pairs = synthesis.iter_pairs(args.kind, sources, args.count, args.size, args.seed, args.procedural)
    n = synthesis.write_pairs(args.out, tqdm(pairs, total=args.count, desc=f"synth {args.kind}", unit="pair"))
    print(f"wrote {n} pairs to {args.out}")
    return 0


# --- train ----------------------------------------------------------------------------------------
def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", default=[], help="dynamic-scene pairs (flat or GoPro layout); repeatable")
    p.add_argument("--global-data", action="append", default=[], help="uniform-blur pairs for phase global")
    p.add_argument("--phase", choices=["global", "local", "joint", "all", "end2end"], default=None,
                   help="default: joint when fine-tuning a trained model, all when training from scratch")
    p.add_argument("--model", default="lite", help="lite (bundled, fine-tune), paper, scratch:lite, or a checkpoint")
    p.add_argument("--variant", choices=["LB", "DB", "DBAF"], default=None, help="ablation variant (Table 1)")
    p.add_argument("--steps", type=int, default=1000, help="steps per phase")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=96)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="start over even if -o exists")
    p.add_argument("-o", "--out", required=True, help="checkpoint to write (and resume from)")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .training import TrainConfig, distributed, train

    cfg = TrainConfig(data=args.data, global_data=args.global_data, phase=args.phase, model=args.model,
                      variant=args.variant, steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr,
                      val_every=args.val_every, checkpoint_every=args.checkpoint_every, out=args.out,
                      seed=args.seed, device=args.device)
    rank, _ = distributed()
    bar, phase = None, None
    for pr in train(cfg, resume=not args.no_resume):
        if rank != 0:
            continue
        if pr.phase != phase:
            if bar is not None:
                bar.close()
            phase = pr.phase
            bar = tqdm(total=pr.total, initial=pr.step - 1, desc=f"phase {pr.phase} ({pr.phase_index + 1}/{pr.phase_count})")
        bar.update(1)
        post = {"loss": f"{pr.loss:.5f}"}
        if pr.val_psnr is not None:
            post["val_psnr"] = f"{pr.val_psnr:.2f}"
            tqdm.write(f"{pr.phase} step {pr.step}/{pr.total} loss {pr.loss:.5f} val PSNR {pr.val_psnr:.2f} dB SSIM {pr.val_ssim:.4f}")
        bar.set_postfix(post)
    if bar is not None:
        bar.close()
    if rank == 0:
        print(f"saved {args.out}")
    return 0


# --- eval -----------------------------------------------------------------------------------------
def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, help="blur/sharp pairs (flat or GoPro layout)")
    p.add_argument("--model", default="lite")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    import json

    from .evaluation import evaluate_model

    res = evaluate_model(args.model, args.data, device=args.device)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"n={res['n']}  input PSNR {res['input_psnr']:.2f} dB SSIM {res['input_ssim']:.4f}  "
              f"output PSNR {res['output_psnr']:.2f} dB SSIM {res['output_ssim']:.4f}  "
              f"gain {res['output_psnr'] - res['input_psnr']:+.2f} dB")
    return 0


# --- deblur ---------------------------------------------------------------------------------------
def _add_deblur(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=_deblur)


def _deblur(args: argparse.Namespace) -> int:
    raise NotImplementedError("gldeblur deblur: being written (issue 6)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("gldeblur: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        print(f"gldeblur {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
