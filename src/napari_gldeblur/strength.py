"""How much of the network's change to keep: a fixed strength in [0, 1], or ``auto`` per frame.

Auto strength compares the network's change with the fine detail the frame already has (one of ``MEASURES``);
the measure and its thresholds are tuned per model by ``scripts/tune_auto_strength.py`` on the tuning sets, never
on the evaluation sets, and stored in that model's checkpoint (``auto_strength``, ``auto_strength_measure``);
``AUTO_STRENGTH_LEVELS`` on ``change_ratio`` serves checkpoints without one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Union

import numpy as np
import torch

if TYPE_CHECKING:
    from .inference import DeblurResult

# Auto strength: the network's mean change on a frame relative to the fine detail the frame already has (both in
# 8-bit grey levels). Blurred frames lack fine detail and get large changes; sharp and soft ones have more detail
# than the network adds. At most the first level the frame is left alone (0), from the second all of the change
# is kept (1), half of it in between. Tuned on the tuning set (never the evaluation sets) by
# `scripts/tune_auto_strength.py`: the gate on "change / detail" for the stage-7 model bundled before, under the constraint
# that every sharp and nearly sharp tuning picture comes back unharmed. A checkpoint's own gate overrides it.
AUTO_STRENGTH_LEVELS = (0.94, 1.056)


def _grey_levels(unit: torch.Tensor) -> torch.Tensor:
    """A (C, H, W) frame in [0, 1] as the 8-bit values a saved picture would have, float."""
    return torch.round(unit.detach().float().cpu().clamp(0, 1) * 255)


def _detail_of_levels(levels: torch.Tensor) -> float:
    from skimage.filters import gaussian

    grey = levels.mean(0).numpy().astype(np.float64)
    return float(np.abs(grey - gaussian(grey, sigma=1.0, preserve_range=True)).mean())


def fine_detail(unit: torch.Tensor) -> float:
    """Mean |grey - grey blurred by a 1 px Gaussian| of a (C, H, W) frame in [0, 1], in 8-bit grey levels."""
    return _detail_of_levels(_grey_levels(unit))


def change_ratio(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean |change| between the 8-bit input and output over the input's fine detail (``fine_detail``)."""
    levels = _grey_levels(before)  # rounded once, for the change and the detail
    change = float((_grey_levels(after) - levels).abs().mean())
    return change / max(_detail_of_levels(levels), 1e-3) if change else 0.0


def smoothed_change_ratio(before: torch.Tensor, after: torch.Tensor) -> float:
    """``change_ratio`` on the grey change smoothed by a 1 px Gaussian: removed grain, which denoising leaves in
    the change, averages out, while a restored edge, coherent over several pixels, stays (scipy's reflecting
    borders, for the change and the detail)."""
    from scipy.ndimage import gaussian_filter

    levels = _grey_levels(before).mean(0).numpy().astype(np.float64)
    moved = _grey_levels(after).mean(0).numpy().astype(np.float64) - levels
    detail = float(np.abs(levels - gaussian_filter(levels, 1.0)).mean())
    return float(np.abs(gaussian_filter(moved, 1.0)).mean()) / max(detail, 1e-3)


# The per-frame measures a gate can use, by the name checkpoints store (``auto_strength_measure``).
MEASURES: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "change / detail": change_ratio, "smoothed change / detail": smoothed_change_ratio}
DEFAULT_MEASURE = "change / detail"


def auto_strength(before: torch.Tensor, after: torch.Tensor,
                  levels: tuple[float, float] = AUTO_STRENGTH_LEVELS, measure: str = DEFAULT_MEASURE) -> float:
    """Strength for one frame (0, 0.5 or 1) from ``measure`` (``MEASURES``): frames that already have more fine
    detail than the network adds (sharp, nearly sharp, soft) are left alone; blurred ones get the whole change."""
    ratio = MEASURES[measure](before, after)
    return 0.0 if ratio <= levels[0] else 0.5 if ratio < levels[1] else 1.0


def strength_note(strength: Union[float, str], result: "DeblurResult") -> str:
    """The strength as a user reads it: "auto strength 0.5" (what auto chose, per frame) or "strength 0.75"."""
    if strength == "auto":
        return "auto strength " + "/".join(f"{s:g}" for s in sorted(set(getattr(result, "strengths", ()))))
    return f"strength {float(strength):.2f}"


def check_strength(strength: Union[float, str]) -> Union[float, str]:
    """``strength`` as the Deblurrer takes it: a number in [0, 1] or "auto"; a clear ValueError otherwise."""
    if strength == "auto":
        return strength
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"strength must be between 0 and 1 or 'auto', got {strength!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"strength must be between 0 and 1 or 'auto', got {strength}")
    return value
