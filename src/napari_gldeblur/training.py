"""Phased training (section 3.2): ``global`` (eq. 2), ``local`` (eq. 3), ``joint`` with the global branch frozen (eq. 4).

``train(config)`` is a generator yielding ``Progress`` after every step, so the CLI and the napari widget
drive the same loop; ``stop()`` returning True ends it after the current step, keeping the best weights.
Under ``torchrun`` the same loop runs with DistributedDataParallel (gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

import copy
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
from .evaluation import psnr, ssim
from .network import CONFIGS, DBAFNet, NetConfig

PHASES = ("global", "local", "joint")
END_TO_END = "end2end"  # LB-Net / DB-Net (and optional DBAF) trained in one go with eq. (4)


@dataclass
class TrainConfig:
    """Everything a run needs; saved inside every checkpoint so a run can resume."""

    data: list[str] = field(default_factory=list)  # dynamic-scene pairs (phases local, joint)
    global_data: list[str] = field(default_factory=list)  # uniform-blur pairs (phase global)
    joint_data: list[str] = field(default_factory=list)  # pairs for phases joint/end2end (default: data)
    phase: Optional[str] = None  # global | local | joint | all | end2end; None: joint to fine-tune, else all
    model: str = "lite"  # lite (bundled weights: fine-tuning) | paper | checkpoint path | "scratch:lite"
    variant: Optional[str] = None  # LB | DB | DBAF (default: the model's)
    steps: int = 1000  # per phase
    batch: int = 8
    patch: int = 96
    lr: float = 1e-3
    val_fraction: float = 0.1
    val_every: int = 100
    val_size: int = 256  # validation on centre crops of this size
    checkpoint_every: int = 200
    out: str = "model.pt"
    seed: int = 0
    device: str = "auto"
    loss: str = "mse"  # mse: eqs. (2)-(4) as in the paper; psnr: minus per-image PSNR (see psnr_distance)
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


# --- losses (section 3.2) --------------------------------------------------------------------------
def mse(out: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.float(), gt)  # ||·||², the paper's distance


PSNR_EPS = 1e-5  # caps each image's weight at 50 dB, beyond what 8-bit output can show


def psnr_distance(out: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Minus the PSNR of each image, averaged over the batch (NAFNet's PSNRLoss; not in the paper).

    Under plain MSE a heavily blurred patch outweighs a nearly sharp one by 10-100x, so the network learns to
    sharpen everything; in dB every image counts the same, which is also how the results are measured.
    """
    per_image = ((out.float() - gt) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(per_image + PSNR_EPS).mean()


DISTANCES = {"mse": mse, "psnr": psnr_distance}


def global_branch_loss(net: nn.Module, x: torch.Tensor, g_gt: torch.Tensor, distance=mse) -> torch.Tensor:
    return distance(net.global_branch(x), g_gt)  # L_G = ||Ψ_G(x) - G_GT||²   (2)


def local_branch_loss(net: nn.Module, x: torch.Tensor, l_gt: torch.Tensor, distance=mse) -> torch.Tensor:
    return distance(net.local_branch(x), l_gt)  # L_L = ||Ψ_L(x) - L_GT||²   (3)


def content_loss(net: nn.Module, x: torch.Tensor, x_gt: torch.Tensor, distance=mse) -> torch.Tensor:
    return distance(net(x).image, x_gt)  # L_φ = ||φ(x) - X_GT||²   (4)


# --- phases ----------------------------------------------------------------------------------------
def phases_for(config: TrainConfig, variant: str) -> list[str]:
    """The phases a run goes through: ``all`` is global → local → joint for DBAF, end-to-end for LB/DB."""
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

    def __init__(self, net: DBAFNet, phase: str, distance: str = "mse"):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown loss {distance!r}: use {' or '.join(DISTANCES)}")
        self.net, self.loss, self.distance = net, LOSSES[phase], DISTANCES[distance]

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
def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def autocast_dtype(net: DBAFNet, device: str, precision: str = "auto") -> Optional[torch.dtype]:
    """bf16 for autocast, or None for fp32: ``auto`` uses bf16 on CUDA and on CPUs where bf16 measures faster.

    Weights, optimizer state, loss and validation stay in float32; only convolutions run in bf16.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"unknown training precision {precision!r}: use auto, fp32 or bf16")
    if precision == "fp32":
        return None
    if precision == "bf16" or device.startswith("cuda"):
        return torch.bfloat16
    from .inference import cpu_bf16_pays_off  # times fp32 vs bf16 once; emulated bf16 is slower

    with torch.no_grad():
        return torch.bfloat16 if device == "cpu" and cpu_bf16_pays_off(net) else None


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
        on_gpu = pick_device(device).startswith("cuda")
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
        return DBAFNet(NetConfig(base.width, base.blocks, variant)), {}
    if name == "lite":
        ckpt = models.read_checkpoint(models.verify_bundled("lite"))
    else:
        ckpt = models.read_checkpoint(name)
    net = models.model_from_checkpoint(ckpt, name)
    if config.variant and config.variant != net.config.variant:
        raise ValueError(f"{name} is a {net.config.variant}-Net; cannot fine-tune it as {config.variant}")
    return net, ckpt


def checkpoint(net: DBAFNet, config: TrainConfig, phases: list[str], phase_index: int, step: int,
               opt: Optional[torch.optim.Optimizer], metrics: dict, history: list) -> dict:
    return {"config": net.config.as_dict(), "train_config": asdict(config), "phases": phases,
            "phase": phases[phase_index], "phase_index": phase_index, "step": step,
            "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "optimizer": opt.state_dict() if opt is not None else None, "metrics": metrics, "history": history}


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


# --- the loop --------------------------------------------------------------------------------------
def train(config: TrainConfig, stop: Callable[[], bool] | None = None, pairs: Sequence[Pair] | None = None,
          resume: bool = True) -> Iterator[Progress]:
    """Run the configured phases, yielding Progress each step; writes ``config.out`` (resumes from it).

    ``pairs`` (in-memory (blur, sharp) arrays, e.g. napari layers) replace ``config.data`` for every phase.
    """
    rank, world = distributed(config.device)
    device = pick_device(config.device)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{rank % torch.cuda.device_count()}"
    torch.manual_seed(config.seed)
    out = Path(config.out)
    state: dict = {}
    if resume and out.is_file():
        state = models.read_checkpoint(out)
        net = models.model_from_checkpoint(state, str(out))
    else:
        net, _ = initial_model(config)
    phases = state.get("phases") or phases_for(config, net.config.variant)
    start_phase, start_step = state.get("phase_index", 0), state.get("step", 0)
    history: list = list(state.get("history", []))
    net.to(device)
    amp = autocast_dtype(net.eval(), device, config.precision)
    net.train()
    cache: dict = {}
    if pairs is not None:
        in_memory = split(list(pairs), config.val_fraction, config.seed)
        cache.update({tuple(config.global_data): in_memory, tuple(config.data): in_memory, tuple(config.joint_data): in_memory})
    metrics: dict = dict(state.get("metrics", {}))
    for pi in range(start_phase, len(phases)):
        phase = phases[pi]
        first_step = start_step if pi == start_phase else 0  # resume mid-phase only in the saved phase
        if first_step >= config.steps:
            continue
        train_pairs, val_pairs = load_data(config, phase, cache)
        sampler = PatchSampler(train_pairs, config.patch, seed=config.seed * 1000 + rank * 7919 + pi * 31 + first_step)
        params = trainable(net, phase)
        opt = torch.optim.Adam(params, lr=config.lr)  # Adam with default betas (section 4.1)
        if first_step > 0 and state.get("optimizer"):
            opt.load_state_dict(state["optimizer"])
        # the schedule continues where a resumed run stopped
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine(s + first_step, config.steps))
        module = _Wrapped(net, phase, config.loss)
        if world > 1:
            module = nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
        best = (-math.inf, None)
        t0, step = time.perf_counter(), first_step
        val_psnr = val_ssim = None
        loss_avg = None
        stream = batches(sampler, config.batch, sampler_workers(config.workers, device), device.startswith("cuda"))
        while step < config.steps:
            x, y = next(stream)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = optimizer_step(module, opt, x, y, device, amp)
            sched.step()
            step += 1
            lv = float(loss.detach())
            loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
            last = step == config.steps or (stop is not None and stop())
            val_psnr = val_ssim = None
            if val_pairs and (step % config.val_every == 0 or last):
                val_psnr, val_ssim = validate(net, val_pairs, phase, config.val_size, device)
                metrics[phase] = {"val_psnr": val_psnr, "val_ssim": val_ssim, "step": step}
                if val_psnr > best[0]:
                    best = (val_psnr, copy.deepcopy(net.state_dict()))
            history.append((phase, step, lv, val_psnr))
            rate = (time.perf_counter() - t0) / (step - first_step)
            yield Progress(phase, step, config.steps, loss_avg, val_psnr, val_ssim, sched.get_last_lr()[0],
                           rate * (config.steps - step + (len(phases) - pi - 1) * config.steps), pi, len(phases),
                           "bf16" if amp is not None else "fp32")
            if rank == 0 and (step % config.checkpoint_every == 0 and not last):
                models.write_checkpoint(out, checkpoint(net, config, phases, pi, step, opt, metrics, history))
            if last and step < config.steps:  # stopped by the user: keep the best weights and end the run
                if best[1] is not None:
                    net.load_state_dict(best[1])
                if rank == 0:
                    models.write_checkpoint(out, checkpoint(net, config, phases, pi, step, opt, metrics, history))
                stream.close()  # stops the batch workers
                return
        stream.close()
        if rank == 0:
            models.write_checkpoint(out, checkpoint(net, config, phases, pi, config.steps, opt, metrics, history))
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
