"""Device and precision policy, one for inference and training: which device, its memory layout, and whether
bfloat16 pays off.

``auto`` takes CUDA, then MPS, then the CPU. On the CPU bfloat16 autocast is used only where a one-time check
(per process, network size and thread count) finds it faster than float32 and accurate.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable, Optional, Union

import numpy as np
import torch

from .evaluation import psnr
from .network import DBAFNet

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BF16_MIN_PSNR = 45.0  # dB between bf16 and fp32 outputs for bf16 to count as accurate
BF16_MIN_SPEEDUP = 1.15  # bf16 must beat fp32 by this factor to be used on the CPU

def pick_device(device: Union[str, torch.device] = "auto") -> torch.device:
    """``auto``: CUDA, then MPS, then CPU; otherwise the named device (ValueError if unavailable)."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no usable CUDA GPU; use --device cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but it is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return dev


def memory_format(device: Union[str, torch.device]) -> torch.memory_format:
    """The layout the network and its inputs run in: channels_last (oneDNN's preferred layout; on a
    CPU a training step at 4 x 192 px takes 0.72-0.76x the time of the default layout, docs/benchmarks.md),
    except on MPS."""
    return torch.contiguous_format if torch.device(device).type == "mps" else torch.channels_last


def use_all_cores() -> int:
    """Give torch one intra-op thread per physical core available to this process (never fewer than now)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS/Windows
        allowed = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or allowed
    except ImportError:
        physical = allowed
    want = max(1, min(allowed, physical))
    if torch.get_num_threads() < want:
        torch.set_num_threads(want)
    return torch.get_num_threads()


_BF16_DECISIONS: dict[tuple, bool] = {}


def cpu_bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _probe_image(size: int) -> torch.Tensor:
    """A natural test image (scikit-image's bundled astronaut at half size), (1, 3, size, size), channels_last."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[::2, ::2][:size, :size], dtype=np.float32) / 255
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def cpu_bf16_pays_off(net: DBAFNet, size: Optional[int] = None, repeats: int = 2) -> bool:
    """Whether bf16 autocast on this CPU is faster than fp32 AND accurate for ``net`` (measured once, cached).

    The flag ``mkldnn bf16 supported`` alone is not enough: CPUs without native bf16 instructions emulate
    it and can be several times slower, so both paths are timed on a small natural image.
    """
    if size is None:  # ~256 px for the lite width, smaller for wider nets so the check stays ~1 s
        size = max(64, int(256 * math.sqrt(16 / net.config.width)) // 32 * 32)
    key = (net.config, torch.get_num_threads(), size)
    if key in _BF16_DECISIONS:
        return _BF16_DECISIONS[key]
    decision = False
    if cpu_bf16_supported():
        x = _probe_image(size)
        with torch.inference_mode():
            fp32 = lambda: net(x).image  # noqa: E731

            def bf16():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return net(x).image

            ref, low = fp32(), bf16()  # also the warm-up runs
            accurate = psnr(low.float().clamp(0, 1).numpy(), ref.clamp(0, 1).numpy()) >= BF16_MIN_PSNR
            if accurate:
                t32, t16 = _best_time(fp32, repeats), _best_time(bf16, repeats)
                decision = t32 >= BF16_MIN_SPEEDUP * t16
    _BF16_DECISIONS[key] = decision
    return decision


def pick_precision(net: DBAFNet, device: torch.device, precision: str = "auto") -> Optional[torch.dtype]:
    """The autocast dtype for ``net`` on ``device`` (None: plain float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bf16_pays_off(net):
        return torch.bfloat16
    return None  # MPS and CPUs where bf16 does not pay: float32


# --- memory and tiles ----------------------------------------------------------------------------------------



def autocast_dtype(net: DBAFNet, device: str, precision: str = "auto") -> Optional[torch.dtype]:
    """Training's autocast: bf16, or None for fp32; ``auto`` uses bf16 on CUDA and on CPUs where it measures
    faster. Weights, optimizer state, loss and validation stay in float32; only convolutions run in bf16."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"unknown training precision {precision!r}: use auto, fp32 or bf16")
    if precision == "fp32":
        return None
    if precision == "bf16" or str(device).startswith("cuda"):
        return torch.bfloat16
    with torch.no_grad():
        return torch.bfloat16 if str(device) == "cpu" and cpu_bf16_pays_off(net) else None
