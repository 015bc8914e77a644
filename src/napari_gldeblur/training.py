"""Phased training (section 3.2): ``global`` (eq. 2), ``local`` (eq. 3), ``joint`` with the global branch frozen (eq. 4).

``train(config)`` is a generator yielding ``Progress`` after every step, so the CLI and the napari widget
drive the same loop; ``stop()`` returning True ends it after the current step, keeping the best weights.
Under ``torchrun`` the same loop runs with DistributedDataParallel (gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

import copy
import functools
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import models
from .datasets import Pair, PatchSampler, batches, load_pairs, split, to_tensor
from .devices import autocast_dtype, memory_format, pick_device  # noqa: F401 (training's device policy)
from .evaluation import psnr, ssim
from .network import CONFIGS, DBAFNet, NetConfig, deepen

PHASES = ("global", "local", "joint")
END_TO_END = "end2end"  # LB-Net / DB-Net (and optional DBAF) trained in one go with eq. (4)


@dataclass
class TrainConfig:
    """Everything a run needs; saved inside every checkpoint so a run can resume."""

    data: list[str] = field(default_factory=list)  # dynamic-scene pairs (phases local, joint)
    global_data: list[str] = field(default_factory=list)  # uniform-blur pairs (phase global)
    joint_data: list[str] = field(default_factory=list)  # pairs for phases joint/end2end (default: data)
    phase: Optional[str | list[str]] = None  # global | local | joint | all | end2end, or a list of phases in order;
    # None: joint to fine-tune, else all
    model: str = "lite"  # lite (bundled weights: fine-tuning) | paper | checkpoint path | "scratch:lite"
    variant: Optional[str] = None  # LB | DB | DBAF (default: the model's)
    deepen: Optional[list[int]] = None  # blocks per scale to grow the starting model to (network.deepen)
    steps: int | dict[str, int] = 1000  # per phase: one number, or a table phase -> steps
    batch: int = 8
    patch: int = 96
    lr: float | dict[str, float] = 1e-3  # peak of each phase's cosine schedule; one number or per phase
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off); the EMA is validated and saved
    online: bool = False  # draw a fresh pair for every patch (datasets.DegradationStream) instead of reading --data
    photos: list[str] = field(default_factory=list)  # folders of sharp photographs for the online stream
    skimage_content: bool = True  # the online stream also crops scikit-image's training pictures
    dead_leaves: float = 0.2  # share of online content that is generated dead leaves
    shapes: float = 0.0  # share of online content that is procedural shapes and stripes (synthesis.procedural_image)
    shallow_focus: float = 0.0  # share of online crops with a defocused background (synthesis.shallow_focus)
    soft: float = 0.0  # share of online crops softened (synthesis.soften) before their degradation: soft targets
    recolour: float = 0.0  # share of online crops in other colours and tones (synthesis.recolour)
    warp: float = 0.0  # share of crops of pictures that are rotated, stretched views (datasets.warped_crop)
    dynamic_share: float = 0.3  # share of dynamic scenes in phase joint's online stream
    grain_targets: bool = True  # online nearly sharp and identity targets keep the input's grain (false: clean)
    denoise: bool = True  # false: every online target keeps the input's grain, so the network deblurs, not denoises
    kernel_mix: Optional[dict[str, float]] = None  # shares of the kernel families in online uniform blur
    # (degradations.KERNEL_FAMILIES -> weight; None: degradations.UNIFORM_MIX)
    val_count: int = 48  # validation pairs drawn once from the online stream (fixed seed)
    reblur: float = 0.0  # share of each batch made by re-blurring sharp content with the kernel estimated from
    # the pairs (fine-tuning on a user's few pairs of one blur; datasets.ReblurSampler); 0: off
    rehearse: float = 0.0  # share of each batch from the general online stream while training on pairs, so a
    # fine-tune keeps what the model knew (sharp stays sharp, other blur still deblurs); 0: off
    val_fraction: float = 0.1
    val_every: int = 100
    val_size: int = 256  # validation on centre crops of this size
    checkpoint_every: int = 200
    out: str = "model.pt"
    seed: int = 0
    device: str = "auto"
    loss: str = "mse"  # mse: eqs. (2)-(4) as in the paper; psnr: minus per-image PSNR (see psnr_distance)
    psnr_cap: float = 50.0  # loss psnr: no image counts for more than one at this PSNR (dB; PSNR_EPS's 50 dB);
    # lower caps weigh blurred patches more against nearly sharp ones
    precision: str = "auto"  # auto: bf16 autocast on CUDA, and on CPUs where it measures faster; fp32; bf16
    workers: int = -1  # processes cutting patch batches ahead of the GPU; -1: auto (see sampler_workers)


@dataclass
class Progress:
    phase: str
    step: int  # steps done in this phase
    total: int  # steps of this phase
    loss: float
    val_psnr: Optional[float] = None
    val_ssim: Optional[float] = None
    lr: float = 0.0
    eta_s: float = 0.0
    phase_index: int = 0
    phase_count: int = 1
    precision: str = "fp32"  # what the forward pass runs in: fp32 or bf16 (autocast)
    val_start: Optional[float] = None  # validation PSNR of the phase's starting weights (the gain's reference)


# --- losses (section 3.2) --------------------------------------------------------------------------
def mse(out: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.float(), gt)  # ||·||², the paper's distance


PSNR_EPS = 1e-5  # caps each image's weight at 50 dB, beyond what 8-bit output can show


def psnr_distance(out: torch.Tensor, gt: torch.Tensor, eps: float = PSNR_EPS) -> torch.Tensor:
    """Minus the PSNR of each image, averaged over the batch (NAFNet's PSNRLoss; not in the paper).

    Under plain MSE a heavily blurred patch outweighs a nearly sharp one by 10-100x, so the network learns to
    sharpen everything; in dB every image counts the same, which is also how the results are measured. An
    image's pull is 1 / (MSE + ``eps``): ``eps`` caps it at the PSNR -10 log10(eps).
    """
    per_image = ((out.float() - gt) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(per_image + eps).mean()


def charbonnier(out: torch.Tensor, gt: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """A smooth L1 distance (Charbonnier): large errors pull less than under MSE, small ones more."""
    return torch.sqrt((out.float() - gt) ** 2 + eps**2).mean()


DISTANCES = {"mse": mse, "psnr": psnr_distance, "l1": charbonnier}


def global_branch_loss(net: nn.Module, x: torch.Tensor, g_gt: torch.Tensor, distance=mse) -> torch.Tensor:
    return distance(net.global_branch(x), g_gt)  # L_G = ||Ψ_G(x) - G_GT||²   (2)


def local_branch_loss(net: nn.Module, x: torch.Tensor, l_gt: torch.Tensor, distance=mse) -> torch.Tensor:
    return distance(net.local_branch(x), l_gt)  # L_L = ||Ψ_L(x) - L_GT||²   (3)


def content_loss(net: nn.Module, x: torch.Tensor, x_gt: torch.Tensor, distance=mse) -> torch.Tensor:
    return distance(net(x).image, x_gt)  # L_φ = ||φ(x) - X_GT||²   (4)


# --- phases ----------------------------------------------------------------------------------------
def phases_for(config: TrainConfig, variant: str) -> list[str]:
    """The phases a run goes through: ``all`` is global → local → joint for DBAF, end-to-end for LB/DB;
    a list (from a recipe) is taken as given, each phase checked."""
    if isinstance(config.phase, (list, tuple)):
        for phase in config.phase:
            if phase not in PHASES + (END_TO_END,):
                raise ValueError(f"unknown phase {phase!r} in the phase list; choose global, local, joint or end2end")
            if variant == "LB" and phase == "global":
                raise ValueError("LB-Net has no global branch: phase 'global' does not apply")
        return list(config.phase)
    phase = config.phase or ("joint" if config.model == "lite" or Path(config.model).is_file() else "all")
    if variant != "DBAF" and phase in ("all", "joint"):
        return [END_TO_END]
    if phase == "all":
        return list(PHASES)
    if phase not in PHASES + (END_TO_END,):
        raise ValueError(f"unknown phase {phase!r}; choose global, local, joint, all or end2end")
    if variant == "LB" and phase == "global":
        raise ValueError("LB-Net has no global branch: phase 'global' does not apply")
    return [phase]


def per_phase(value, phase: str, name: str):
    """A setting that is one value for every phase or a table phase -> value (recipes)."""
    if isinstance(value, dict):
        if phase not in value:
            raise ValueError(f"{name} has no value for phase {phase!r} (it has {', '.join(value)})")
        return value[phase]
    return value


def check_config(config: TrainConfig) -> None:
    """Refuse settings that cannot train, before any work: one line naming the option."""
    positive = {"batch": config.batch, "patch": config.patch, "val_every": config.val_every,
                "checkpoint_every": config.checkpoint_every, "val_size": config.val_size}
    for name, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a whole number >= 1 (got {value})")
    for name, table in (("steps", config.steps), ("lr", config.lr)):
        for phase, value in (table.items() if isinstance(table, dict) else [("", table)]):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"--{name} must be > 0 (got {value}{' for ' + phase if phase else ''})")
    if not (0 <= config.reblur <= 1 and 0 <= config.rehearse <= 1 and config.reblur + config.rehearse < 1):
        raise ValueError(f"--reblur ({config.reblur}) and --rehearse ({config.rehearse}) are shares of each batch: "
                         "each 0 to 1, together below 1 (the rest comes from the pairs)")
    shares = (config.dynamic_share, config.soft, config.shallow_focus, config.recolour, config.warp)
    if not (0 <= config.dead_leaves and 0 <= config.shapes and config.dead_leaves + config.shapes <= 1
            and all(0 <= share <= 1 for share in shares)):
        raise ValueError(f"dead_leaves ({config.dead_leaves}) and shapes ({config.shapes}) are shares of the online "
                         f"content, together at most 1; dynamic_share ({config.dynamic_share}), soft "
                         f"({config.soft}), shallow_focus ({config.shallow_focus}), recolour ({config.recolour}) and "
                         f"warp ({config.warp}) are shares, 0 to 1")
    if config.kernel_mix is not None:
        from .degradations import check_mix

        check_mix(config.kernel_mix)
    if not 0 <= config.ema < 1:
        raise ValueError(f"ema must be in [0, 1) (got {config.ema})")
    if not (isinstance(config.psnr_cap, (int, float)) and 10 <= config.psnr_cap <= 100):
        raise ValueError(f"psnr_cap is a PSNR in dB, 10 to 100 (got {config.psnr_cap})")
    if not 0 <= config.val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1) (got {config.val_fraction})")
    if Path(config.out).is_dir():
        raise ValueError(f"-o {config.out} is a folder: give the checkpoint file to write, e.g. {config.out}/model.pt")


def load_recipe(path: str | os.PathLike, **overrides) -> TrainConfig:
    """A TrainConfig from a TOML recipe (recipes/*.toml): its keys are TrainConfig fields; ``overrides``
    (e.g. a GPU's larger batch) replace recipe values."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot read recipe {path}: {e}") from None
    known = {f for f in TrainConfig.__dataclass_fields__}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"recipe {path}: unknown setting(s) {', '.join(unknown)}")
    return TrainConfig(**(values | {k: v for k, v in overrides.items() if v is not None}))


def trainable(net: DBAFNet, phase: str) -> list[nn.Parameter]:
    """Freeze/unfreeze per phase: only the trained part keeps requires_grad (phase joint freezes Ψ_G)."""
    net.requires_grad_(False)
    if phase == "global":
        part: nn.Module = net.global_branch
    elif phase == "local":
        part = net.local_branch
    else:
        part = net
    part.requires_grad_(True)
    if phase == "joint" and net.global_branch is not None:
        net.global_branch.requires_grad_(False)  # section 3.2, phase 3: fix the global branch
    if phase in ("joint", END_TO_END):
        net.local_branch.image_convs.requires_grad_(False)  # the branch image heads only serve eq. (2)/(3)
        if net.global_branch is not None:
            net.global_branch.image_convs.requires_grad_(False)
    return [p for p in net.parameters() if p.requires_grad]


LOSSES = {"global": global_branch_loss, "local": local_branch_loss, "joint": content_loss, END_TO_END: content_loss}


class _Wrapped(nn.Module):
    """Gives DDP one module whose forward is the phase's loss."""

    def __init__(self, net: DBAFNet, phase: str, distance: str = "mse", psnr_cap: Optional[float] = None):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown loss {distance!r}: use {' or '.join(DISTANCES)}")
        self.net, self.loss, self.distance = net, LOSSES[phase], DISTANCES[distance]
        if distance == "psnr" and psnr_cap is not None:  # None: psnr_distance's own cap (PSNR_EPS)
            self.distance = functools.partial(psnr_distance, eps=10 ** (-psnr_cap / 10))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(self.net, x, y, self.distance)


# --- evaluation ------------------------------------------------------------------------------------
def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return image[y : y + size, x : x + size]


@torch.no_grad()
def restore(net: DBAFNet, blur: np.ndarray, phase: str = "joint", device: str = "cpu") -> np.ndarray:
    """The phase's output for one (H, W, 3) image: a branch image for global/local, else φ(x)."""
    x = to_tensor([blur]).to(device)
    if phase == "global":
        y = net.global_branch(x)
    elif phase == "local":
        y = net.local_branch(x)
    else:
        y = net(x).image
    return y[0].permute(1, 2, 0).float().cpu().numpy()


def validate(net: DBAFNet, pairs: Sequence[Pair], phase: str, size: int, device: str) -> tuple[float, float]:
    """Mean PSNR/SSIM of the phase's output on centre crops of the validation pairs."""
    was_training = net.training
    net.eval()
    scores = []
    for blur, sharp in pairs:
        b, s = centre_crop(blur, size), centre_crop(sharp, size)
        out = restore(net, b, phase, device)
        scores.append((psnr(out, s), ssim(out, s)))
    net.train(was_training)
    return tuple(float(v) for v in np.mean(scores, axis=0)) if scores else (float("nan"), float("nan"))


# --- setup -----------------------------------------------------------------------------------------
def sampler_workers(workers: int, device: str) -> int:
    """Batch-cutting processes: ``workers`` if set, else none on a CPU (they would take its cores) and up to
    6 on a GPU, whose steps are shorter than the ~30 ms numpy needs to cut a batch."""
    if workers >= 0:
        return workers
    if not device.startswith("cuda"):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(6, cores // max(1, torch.cuda.device_count()) - 2))


def distributed(device: str = "auto") -> tuple[int, int]:
    """(rank, world size); initialises the process group when started by torchrun: NCCL when the processes
    train on GPUs (one each), gloo when they train on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        on_gpu = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        per_node, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", world)), torch.cuda.device_count()
        if on_gpu and per_node > gpus:
            raise ValueError(f"torchrun started {per_node} processes per machine but it has {gpus} GPU(s): "
                             f"use --nproc-per-node {gpus}, or --device cpu")
        dist.init_process_group("nccl" if on_gpu else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def initial_model(config: TrainConfig) -> tuple[DBAFNet, dict]:
    """The network to start from and the checkpoint dict it came from (empty for fresh weights)."""
    name = config.model
    if name.startswith("scratch:") or name == "paper" or (name == "lite" and not models.bundled_available()):
        base = CONFIGS[name.split(":")[-1]]
        variant = config.variant or base.variant
        return DBAFNet(NetConfig(base.width, tuple(config.deepen) if config.deepen else base.blocks, variant)), {}
    if name == "lite":
        ckpt = models.read_checkpoint(models.verify_bundled("lite"))
    else:
        ckpt = models.read_checkpoint(name)
    net = models.model_from_checkpoint(ckpt, name)
    if config.variant and config.variant != net.config.variant:
        raise ValueError(f"{name} is a {net.config.variant}-Net; cannot fine-tune it as {config.variant}")
    if config.deepen:
        gate = {k: getattr(net, k) for k in ("auto_strength", "auto_strength_measure") if hasattr(net, k)}
        net = deepen(net, tuple(config.deepen))  # computes what the starting model computes, until trained
        for k, v in gate.items():
            setattr(net, k, v)
    return net, ckpt


def checkpoint(net: DBAFNet, config: TrainConfig, phases: list[str], phase_index: int, step: int,
               opt: Optional[torch.optim.Optimizer], metrics: dict, history: list, ema: Optional[EMA] = None) -> dict:
    """What a run saves: ``model`` is what deblurs (the EMA when on); ``train_weights`` + ``ema`` let it resume."""
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    ckpt = {"config": net.config.as_dict(), "train_config": asdict(config), "phases": phases,
            "phase": phases[phase_index], "phase_index": phase_index, "step": step,
            "model": ema.weights() if ema is not None else weights,
            "optimizer": opt.state_dict() if opt is not None else None, "metrics": metrics, "history": history}
    if ema is not None:
        ckpt |= {"train_weights": weights, "ema": {"updates": ema.updates, "decay": ema.decay}}
    if getattr(net, "auto_strength", None) is not None:  # the starting model's gate, until retuned for the new weights
        ckpt["auto_strength"] = list(net.auto_strength)
        ckpt["auto_strength_measure"] = getattr(net, "auto_strength_measure", None)
    return ckpt


def load_data(config: TrainConfig, phase: str, cache: dict) -> tuple[list[Pair], list[Pair]]:
    """(train, validation) pairs of a phase, read once per folder list; ``cache`` may hold in-memory pairs."""
    roots = {"global": config.global_data, "local": config.data}.get(phase, config.joint_data or config.data)
    key = tuple(roots)
    if key not in cache:
        if not roots:
            raise ValueError("phase global needs --global-data (uniform-blur pairs)" if phase == "global"
                             else f"phase {phase} needs --data (dynamic-scene pairs)")
        cache[key] = split(load_pairs(roots), config.val_fraction, config.seed)
    return cache[key]


class EMA:
    """An exponential moving average of the weights (float32), warmed up so early steps count (NAFNet, EDM)."""

    def __init__(self, net: nn.Module, decay: float, state: Optional[dict] = None):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in net.state_dict().items()}
        self.updates = 0
        if state:
            self.shadow.update({k: v.to(self.shadow[k].device) for k, v in state["weights"].items()})
            self.updates = int(state["updates"])

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in net.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.float(), 1 - d)
            else:
                self.shadow[k].copy_(v)

    def weights(self) -> dict:
        return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in self.shadow.items()}


def content_pool(config: TrainConfig) -> list[np.ndarray]:
    """Sharp pictures the online stream crops: photograph folders plus scikit-image's training pictures."""
    from .datasets import read_image
    from .imageio import list_images
    from .synthesis import TRAIN_IMAGES, skimage_images

    pool = []
    for folder in config.photos:
        files = list_images(folder) if Path(folder).is_dir() else []
        if not files:
            raise ValueError(f"no photographs in {folder} (scripts/fetch_photos.py makes them)")
        pool += [read_image(f) for f in files]
    return pool + (skimage_images(TRAIN_IMAGES) if config.skimage_content else [])


def online_data(config: TrainConfig, phase: str, sources: list[np.ndarray], seed: int, with_val: bool = True):
    """(stream, validation pairs) of a phase: uniform blur for global, dynamic scenes for local, both for joint."""
    from .datasets import DegradationStream

    kind = {"global": "uniform", "local": "dynamic"}.get(phase, "mixed")
    content = dict(kind=kind, dead_leaves=config.dead_leaves, dynamic_share=config.dynamic_share,
                   grain_targets=config.grain_targets, shapes=config.shapes, soft=config.soft,
                   denoise=config.denoise, mix=config.kernel_mix, shallow_focus=config.shallow_focus,
                   recolour=config.recolour, warp=config.warp)
    stream = DegradationStream(sources, config.patch, seed=seed, **content)
    if not with_val:
        return stream, []
    val = DegradationStream(sources, config.val_size, seed=config.seed, **content)
    return stream, val.fixed_pairs(config.val_count, config.val_size, seed=config.seed + PHASES_SEED.get(phase, 3))


PHASES_SEED = {"global": 0, "local": 1, "joint": 2, END_TO_END: 2}  # end2end and joint: one loss, one stream, one validation set


def fine_tune_sampler(config: TrainConfig, phase: str, pairs: Sequence[Pair], sampler, seed: int):
    """``sampler`` (the user's pairs) mixed with a ``config.reblur`` share of sharp content (the pairs' sharp
    images and the content pool) re-blurred by the kernel and noise estimated from ``pairs`` (a fifth of them
    left sharp), and a ``config.rehearse`` share of the general online stream."""
    from . import degradations as dg
    from .datasets import MixedSampler, ReblurSampler

    pool = content_pool(config)
    samplers, shares = [sampler], [1 - config.reblur - config.rehearse]
    if config.reblur > 0:
        kernel = dg.estimate_kernel(pairs)
        noise = dg.residual_noise(pairs, kernel)
        samplers.append(ReblurSampler([s for _, s in pairs] + pool, kernel, noise, config.patch, seed + 1, identity=0.2))
        shares.append(config.reblur)
    if config.rehearse > 0:
        samplers.append(online_data(config, phase, pool, seed + 2, with_val=False)[0])
        shares.append(config.rehearse)
    return MixedSampler(samplers, shares)


def check_same_run(saved: dict, config: TrainConfig, out: Path) -> None:
    """Resuming continues the run ``out`` holds: a different model, phase, variant or growth is refused."""
    for key in ("model", "phase", "variant", "deepen"):
        if key in saved and saved[key] != getattr(config, key):
            raise ValueError(f"{out} holds a run with {key} {saved[key]!r}, not {getattr(config, key)!r}: "
                             f"use another -o, or --no-resume to start over")


class NonFiniteLoss(ValueError):
    """The loss became NaN or infinite: the run stops, the last written checkpoint stays as it was."""


# --- the loop --------------------------------------------------------------------------------------
def train(config: TrainConfig, stop: Callable[[], bool] | None = None, pairs: Sequence[Pair] | None = None,
          resume: bool = True) -> Iterator[Progress]:
    """Run the configured phases, yielding Progress each step; writes ``config.out`` (resumes from it).

    ``pairs`` (in-memory (blur, sharp) arrays, e.g. napari layers) replace ``config.data`` for every phase;
    ``config.online`` draws fresh pairs instead. A non-finite loss raises NonFiniteLoss and writes nothing.
    """
    check_config(config)
    rank, world = distributed(config.device)
    device = str(pick_device(config.device))
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{rank % torch.cuda.device_count()}"
    torch.manual_seed(config.seed)
    out = Path(config.out)
    state: dict = {}
    if resume and out.is_file():
        state = models.read_checkpoint(out)
        check_same_run(state.get("train_config", {}), config, out)
        net = models.model_from_checkpoint(state | {"model": state.get("train_weights", state["model"])}, str(out))
    else:
        net, _ = initial_model(config)
    phases = state.get("phases") or phases_for(config, net.config.variant)
    start_phase, start_step = state.get("phase_index", 0), state.get("step", 0)
    history: list = list(state.get("history", []))
    layout = memory_format(device)
    net.to(device, memory_format=layout)
    amp = autocast_dtype(net.eval(), device, config.precision)
    net.train()
    ema = EMA(net, config.ema, {"weights": state["model"], **state["ema"]} if "ema" in state else None) \
        if config.ema else None
    cache: dict = {}
    if pairs is not None:
        in_memory = split(list(pairs), config.val_fraction, config.seed)
        cache.update({tuple(config.global_data): in_memory, tuple(config.data): in_memory, tuple(config.joint_data): in_memory})
    sources = content_pool(config) if config.online and pairs is None else None
    metrics: dict = dict(state.get("metrics", {}))
    for pi in range(start_phase, len(phases)):
        phase = phases[pi]
        steps, lr = per_phase(config.steps, phase, "steps"), per_phase(config.lr, phase, "lr")
        first_step = start_step if pi == start_phase else 0  # resume mid-phase only in the saved phase
        if first_step >= steps:
            continue
        seed = config.seed * 1000 + rank * 7919 + pi * 31 + first_step
        if sources is not None:
            sampler, val_pairs = online_data(config, phase, sources, seed)
        else:
            train_pairs, val_pairs = load_data(config, phase, cache)
            sampler = PatchSampler(train_pairs, config.patch, seed=seed)
            if config.reblur > 0 or config.rehearse > 0:
                sampler = fine_tune_sampler(config, phase, train_pairs, sampler, seed)
        params = trainable(net, phase)
        opt = torch.optim.Adam(params, lr=lr)  # Adam with default betas (section 4.1)
        if first_step > 0 and state.get("optimizer"):
            opt.load_state_dict(state["optimizer"])
            for group in opt.param_groups:  # this run's learning rate, not the saved one
                group["lr"] = lr
                group.pop("initial_lr", None)
        # the schedule continues where a resumed run stopped
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine(s + first_step, steps))
        module = _Wrapped(net, phase, config.loss, config.psnr_cap)
        if world > 1:
            module = nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
        scored = copy.deepcopy(net) if ema is not None else net  # what validation measures: the EMA when on
        best = (-math.inf, None)
        val_start = metrics.get(phase, {}).get("val_start") if first_step else None
        if val_pairs and first_step == 0:  # the starting weights: what a fine-tune must beat, and a "best" candidate
            val_start = validate(net, val_pairs, phase, config.val_size, device)[0]
            metrics[phase] = {"val_start": val_start}
            best = (val_start, copy.deepcopy(net.state_dict()))
        t0, step = time.perf_counter(), first_step
        val_psnr = val_ssim = None
        loss_avg = None
        stream = batches(sampler, config.batch, sampler_workers(config.workers, device), device.startswith("cuda"))

        def diverged(what: str, at: int) -> NonFiniteLoss:
            """Stop the batch workers; the error names what went non-finite and what ``out`` still holds."""
            stream.close()
            kept = f"{out} keeps its last good step, {models.read_checkpoint(out)['step']}" if out.is_file() \
                else "nothing was saved"
            return NonFiniteLoss(f"{what} at {phase} step {at} (learning rate {lr:g} too high?); {kept}")

        def save(at: int) -> None:
            """Write the checkpoint, unless the weights went non-finite (then the last good one stays)."""
            if not all(torch.isfinite(p).all() for p in net.parameters()):
                raise diverged("the weights became non-finite", at)
            models.write_checkpoint(out, checkpoint(net, config, phases, pi, at, opt, metrics, history, ema))

        while step < steps:
            x, y = next(stream)
            x = x.to(device, non_blocking=True, memory_format=layout)
            y = y.to(device, non_blocking=True, memory_format=layout)
            loss = optimizer_step(module, opt, x, y, device, amp)
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise diverged(f"the loss became {lv}", step + 1)
            sched.step()
            if ema is not None:
                ema.update(net)
            step += 1
            loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
            last = step == steps or (stop is not None and stop())
            val_psnr = val_ssim = None
            if val_pairs and (step % config.val_every == 0 or last):
                if ema is not None:
                    scored.load_state_dict(ema.shadow)
                val_psnr, val_ssim = validate(scored, val_pairs, phase, config.val_size, device)
                metrics[phase] = {"val_psnr": val_psnr, "val_ssim": val_ssim, "step": step, "val_start": val_start}
                if val_psnr > best[0]:
                    best = (val_psnr, copy.deepcopy(scored.state_dict()))
            history.append((phase, step, lv, val_psnr))
            rate = (time.perf_counter() - t0) / (step - first_step)
            left = steps - step + sum(per_phase(config.steps, p, "steps") for p in phases[pi + 1:])
            yield Progress(phase, step, steps, loss_avg, val_psnr, val_ssim, sched.get_last_lr()[0],
                           rate * left, pi, len(phases), "bf16" if amp is not None else "fp32", val_start)
            if rank == 0 and (step % config.checkpoint_every == 0 and not last):
                save(step)
            if last and step < steps:  # stopped by the user: keep the best weights and end the run
                if best[1] is not None:
                    (ema.shadow.update(best[1]) if ema is not None else net.load_state_dict(best[1]))
                if rank == 0:
                    save(step)
                stream.close()  # stops the batch workers
                return
        stream.close()
        if rank == 0:
            save(steps)
    if world > 1:
        dist.barrier()


def optimizer_step(module: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, device: str,
                   amp: Optional[torch.dtype]) -> torch.Tensor:
    """One step: the phase's loss (``module``, under autocast to ``amp`` if set), backward, update; returns the loss."""
    with torch.autocast(device.split(":")[0], dtype=amp or torch.bfloat16, enabled=amp is not None):
        loss = module(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def cosine(step: int, total: int, floor: float = 0.05) -> float:
    """Learning-rate factor: cosine decay from 1 to ``floor`` over a phase."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
