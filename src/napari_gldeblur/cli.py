"""``gldeblur`` command line: synth, train, eval, deblur. Errors are one line on stderr + exit code 1."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence, Union

from .finetune import FINE_TUNE  # the measured fine-tuning defaults: applied to fine-tunes, named in --help


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
    p.add_argument("--kind", choices=["global", "dynamic", "mixed", "mild", "sharp", "soft"],
                   default="mixed", help="mild: nearly sharp (0.3-0.8 px Gaussian); sharp: identity pairs (input = "
                   "target), so training learns to leave sharp images alone; soft: identity pairs of soft, noisy "
                   "content (resampled 0.4-0.8x down and back up), so it leaves soft footage alone too")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--held-out", action="store_true", help="use the held-out scikit-image images (evaluation sets)")
    p.add_argument("--procedural", type=float, default=0.25, help="fraction of pairs made from generated content")
    p.add_argument("--kernel-seed", type=int, default=None, help="seed of the 56-kernel bank (default: --seed)")
    p.add_argument("--augment", action="store_true", help="jitter sources: scale, channel order, gain, gamma")
    p.add_argument("--content", choices=["shapes", "dead-leaves"], default="shapes",
                   help="generated content for the --procedural fraction: random shapes, or dead leaves")
    p.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import synthesis
    from .datasets import find_pairs, read_image
    from .imageio import list_images

    if args.count < 1 or args.size < 16:
        raise ValueError("--count must be >= 1 and --size >= 16")
    if not 0 <= args.procedural <= 1:
        raise ValueError(f"--procedural is a fraction of the pairs, 0 to 1 (got {args.procedural})")
    if Path(args.out).is_dir() and any((Path(args.out) / d).is_dir() and list_images(Path(args.out) / d)
                                       for d in ("blur", "sharp")):
        n = len(find_pairs(args.out)) if (Path(args.out) / "sharp").is_dir() else 0
        raise ValueError(f"{args.out} already holds pairs ({n}): write to another -o or remove them first")
    if args.sharp_dir:
        if not Path(args.sharp_dir).is_dir():
            raise ValueError(f"{args.sharp_dir}: no such folder")
        files = list_images(args.sharp_dir)
        if not files:
            raise ValueError(f"no images in {args.sharp_dir}")
        sources = [read_image(f) for f in files]
    else:
        sources = synthesis.skimage_images(synthesis.HELD_OUT if args.held_out else synthesis.TRAIN_IMAGES)
    pairs = synthesis.iter_pairs(args.kind, sources, args.count, args.size, args.seed, args.procedural,
                                 args.kernel_seed, args.augment, args.content)
    n = synthesis.write_pairs(args.out, tqdm(pairs, total=args.count, desc=f"synth {args.kind}", unit="pair"))
    print(f"wrote {n} pairs to {args.out}")
    return 0


# --- train ----------------------------------------------------------------------------------------
def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default=None,
                   help="a TOML recipe (recipes/*.toml) holding the run's settings; options given here override it")
    p.add_argument("--data", action="append", default=None, help="dynamic-scene pairs (flat or GoPro layout); repeatable")
    p.add_argument("--global-data", action="append", default=None, help="uniform-blur pairs for phase global")
    p.add_argument("--joint-data", action="append", default=None,
                   help="pairs for phase joint / end2end (default: --data); repeatable")
    p.add_argument("--phase", choices=["global", "local", "joint", "all", "end2end"], default=None,
                   help=f"default: {FINE_TUNE['phase']} when fine-tuning a trained model, all when training from scratch")
    p.add_argument("--reblur", type=float, default=None,
                   help=f"share of each batch re-blurred with the kernel estimated from your pairs (fine-tuning default "
                        f"{FINE_TUNE['reblur']})")
    p.add_argument("--rehearse", type=float, default=None,
                   help="share of each batch from the general synthetic stream, so a fine-tune keeps what the model "
                        f"knew (fine-tuning default {FINE_TUNE['rehearse']})")
    p.add_argument("--model", default=None, help="lite (bundled, fine-tune; default), paper, scratch:lite, or a checkpoint")
    p.add_argument("--variant", choices=["LB", "DB", "DBAF"], default=None, help="ablation variant (Table 1)")
    p.add_argument("--steps", type=int, default=None, help=f"steps per phase (default 1000; fine-tuning {FINE_TUNE['steps']})")
    p.add_argument("--batch", type=int, default=None, help=f"patches per step (default 8; fine-tuning {FINE_TUNE['batch']})")
    p.add_argument("--patch", type=int, default=None, help=f"patch side in pixels (default 96; fine-tuning {FINE_TUNE['patch']})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default 1e-3; fine-tuning {FINE_TUNE['lr']:g})")
    p.add_argument("--val-every", type=int, default=None, help="validate every N steps (default 100)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="save every N steps (default 200)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--loss", choices=["mse", "psnr", "l1"], default=None,
                   help=f"mse (default; fine-tuning {FINE_TUNE['loss']}): the paper's eqs. 2-4; psnr: minus per-image "
                        "PSNR, so nearly sharp images count as much as blurred ones; l1: a smooth L1 (Charbonnier)")
    p.add_argument("--psnr-cap", type=float, default=None,
                   help="loss psnr: no image pulls harder than one at this PSNR in dB (default 50; lower weighs "
                        "blurred images more against nearly sharp ones)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                   help="auto (default): bf16 autocast on CUDA and on CPUs where it measures faster; fp32 forces float32")
    p.add_argument("--workers", type=int, default=None,
                   help="processes cutting patch batches ahead of the GPU (default: none on a CPU, up to 6 on CUDA)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-resume", action="store_true", help="start over even if -o exists")
    p.add_argument("-o", "--out", default=None, help="checkpoint to write (and resume from); required without --recipe")
    p.set_defaults(func=_train)


TRAIN_OPTIONS = ("data", "global_data", "joint_data", "phase", "model", "variant", "steps", "batch", "patch", "lr",
                 "val_every", "checkpoint_every", "device", "loss", "psnr_cap", "precision", "workers", "seed", "out",
                 "reblur", "rehearse")


def train_config(args: argparse.Namespace):
    """The TrainConfig of ``gldeblur train``: the recipe's settings (if any) with the given options on top."""
    from .training import TrainConfig, load_recipe

    given = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    if args.recipe:
        return load_recipe(args.recipe, **given)
    if "out" not in given:
        raise ValueError("give -o CHECKPOINT (or --recipe FILE)")
    if is_fine_tune(given.get("model", "lite")):  # the measured fine-tuning defaults, as the Fine-tune widget
        given = {**FINE_TUNE, **given}
    return TrainConfig(**given)


def is_fine_tune(model: str) -> bool:
    """Training starts from trained weights: the bundled lite or a checkpoint file (not scratch:, not paper)."""
    return model == "lite" or Path(model).is_file()


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .training import distributed, train

    cfg = train_config(args)
    rank, _ = distributed(cfg.device)
    bar, phase = None, None
    for pr in train(cfg, resume=not args.no_resume):
        if rank != 0:
            continue
        if pr.phase != phase:
            if bar is not None:
                bar.close()
            phase = pr.phase
            tqdm.write(f"phase {pr.phase}: forward passes in {pr.precision}")
            bar = tqdm(total=pr.total, initial=pr.step - 1, desc=f"phase {pr.phase} ({pr.phase_index + 1}/{pr.phase_count})",
                       mininterval=5)
        bar.update(1)
        post = {"loss": f"{pr.loss:.5f}"}
        if pr.val_psnr is not None:
            post["val_psnr"] = f"{pr.val_psnr:.2f}"
            tqdm.write(f"{pr.phase} step {pr.step}/{pr.total} loss {pr.loss:.5f} val PSNR {pr.val_psnr:.2f} dB SSIM {pr.val_ssim:.4f}")
        bar.set_postfix(post, refresh=False)
    if bar is not None:
        bar.close()
    if rank == 0:
        print(f"saved {cfg.out}")
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
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files (png/jpg/tif/bmp) or folders of them")
    p.add_argument("-o", "--out", required=True, help="output folder: OUT/<name> keeps each file's format and bit depth")
    p.add_argument("--model", default="lite", help="lite (bundled), paper (random weights) or a checkpoint path")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, default=None, help="tile side in pixels (default: chosen from free memory)")
    p.add_argument("--overlap", type=int, default=None,
                   help="pixels shared by neighbouring tiles (blended; default: the network's receptive radius, 68 for lite)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16/fp16 only where measured faster and accurate; fp32 forces float32")
    p.add_argument("--strength", default="auto",
                   help="how much of the network's change to keep, 0-1 (lower it for soft footage it over-sharpens), "
                        "or auto (default): 0, 0.5 or 1 per image from the size of the change against the detail it has")
    p.add_argument("--features", action="store_true",
                   help="also write <stem>_local.tif, <stem>_global.tif, <stem>_attention.tif (float32 maps)")
    p.add_argument("--channel-axis", type=int, default=None,
                   help="axis of channels (e.g. 0 for a C,Y,X TIFF): each channel is deblurred as a gray image")
    p.add_argument("--sample", action="store_true", help="deblur the bundled sample scene (no INPUT needed)")
    p.set_defaults(func=_deblur)


def _deblur(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .batch import check_output_folder, collect_inputs, deblur_files, rank_and_world, rank_device, shard
    from .inference import Deblurrer, check_strength

    if not args.inputs and not args.sample:
        raise ValueError("give INPUT image files or folders, or --sample")
    try:
        args.strength = check_strength(args.strength)
    except ValueError as e:
        raise ValueError(f"--{e}") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out} exists and is not a folder")
    check_output_folder(out)
    rank, world = rank_and_world()
    files, failures = collect_inputs(args.inputs)
    files = shard(files, rank, world)  # under torchrun each rank takes every world-th file
    for message in failures if rank == 0 else []:
        print(f"gldeblur deblur: {message}", file=sys.stderr)
    d = Deblurrer(model=args.model, device=rank_device(args.device), tile=args.tile, overlap=args.overlap,
                  precision=args.precision)
    if args.sample and rank == 0:
        _deblur_sample(d, out, args.features, args.strength)
    ok = 0
    bar = tqdm(total=len(files), desc="deblur" if world == 1 else f"deblur rank {rank}/{world}", unit="image",
               disable=not files)

    def progress(done: int, total: int) -> None:
        if total > 1:
            bar.set_postfix_str(f"tile {done}/{total}")

    for item in deblur_files(d, files, out, args.features, args.strength, args.channel_axis, progress):
        bar.update(1)
        if item.error:
            failures.append(item.error)
            tqdm.write(f"gldeblur deblur: {item.error}", file=sys.stderr)
        else:
            ok += 1
    bar.close()
    if files:
        where = "" if world == 1 else f" (rank {rank} of {world})"
        print(f"deblurred {ok} of {len(files)} image(s) into {out}{where}")
    return 1 if failures else 0


def _deblur_sample(d, out: Path, features: bool, strength: Union[float, str] = 1.0) -> None:
    """Deblur the napari sample scene; writes its blurry, sharp and deblurred images and prints the PSNRs."""
    from ._sample_data import dynamic_scene
    from .batch import write_features
    from .evaluation import psnr
    from .imageio import write_image_file
    from .inference import strength_note

    layers = {meta["name"].split(" (")[0]: data for data, meta, _ in dynamic_scene()}
    blurry, sharp = layers["blurry scene"], layers["sharp reference"]
    result = d(blurry, features=features, strength=strength)
    for name, arr in (("blurry", blurry), ("sharp", sharp)):
        write_image_file(out / f"sample_{name}.png", arr)
    write_image_file(out / "sample_deblurred.png", result.image, metadata=result.provenance)
    if features:
        write_features(result, out, "sample")
    before, after = psnr(blurry / 255.0, sharp / 255.0), psnr(result.image / 255.0, sharp / 255.0)
    print(f"sample: PSNR against the sharp reference {before:.2f} dB blurry -> {after:.2f} dB deblurred "
          f"({result.seconds:.2f} s on {result.device}, {result.precision}, {strength_note(strength, result)}); "
          f"images in {out}")
    if strength == "auto" and min(result.strengths) < 1.0:  # say what the network alone would have given
        full = psnr(d(blurry, features=False, strength=1.0).image / 255.0, sharp / 255.0)
        print(f"sample: auto strength kept {min(result.strengths):g} of the network's change (it leaves pictures "
              f"alone that already have much fine detail); with --strength 1: {full:.2f} dB")


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
