"""Fine-tuning on a user's own pairs, Qt-free: pairs from layer arrays or folders, the settings a run takes,
and ``run_training``, the generator a napari thread worker (or any caller) drives. Nothing here touches Qt
or napari layers; the Fine-tune widget (``_train_widget``) is a thin view over it.
"""
from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Optional, Sequence, Union

import numpy as np

from .errors import describe_error

if TYPE_CHECKING:
    from .training import Progress

log = logging.getLogger(__name__)

Pair = tuple[np.ndarray, np.ndarray]

FILE = "<file>"  # value of the start-model chooser's "checkpoint file…" entry
# Defaults for fine-tuning a trained model on a user's pairs, shared by ``gldeblur train`` and the Fine-tune
# widget; measured with benchmarks/bench_finetune.py (docs/benchmarks.md, "Fine-tuning").
FINE_TUNE = {"phase": "end2end", "steps": 300, "lr": 1e-3, "batch": 32, "patch": 96, "loss": "mse",
             "reblur": 0.5, "rehearse": 0.25, "val_fraction": 0.2}
MIN_SIZE = 16  # smallest image side we train on (the network downsamples twice; smaller crops teach nothing)
PREVIEW_SIZE = 256  # the preview deblurs at most this many pixels square around the view centre (cheap)
OWN_ROLES = ("preview", "local", "global", "attention")  # our output layers: never offered as training data
PHASE_CHOICES = [
    ("everything (fine-tune default)", "end2end"),
    ("joint (global branch frozen)", "joint"),
    ("local branch only", "local"),
    ("global branch only (uniform blur pairs)", "global"),
    ("all: global → local → joint", "all"),
]


# --- Qt-free helpers ------------------------------------------------------------------------------
def frame_shape(data_shape: tuple[int, ...], rgb: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split a layer shape into (leading stack axes, one frame's shape)."""
    k = 3 if rgb else 2
    return tuple(data_shape[:-k]), tuple(data_shape[-k:])


def unwrap(obj: Any) -> Any:
    """The object behind napari's plugin proxies (each access makes a new proxy, so ``is``/``id`` need this)."""
    return getattr(obj, "__wrapped__", obj)


def describe_shape(shape: Sequence[int], rgb: bool) -> str:
    """'48x64' or '3 frames of 48x64' (width x height), for messages naming a layer's size."""
    stack, frame = frame_shape(tuple(shape), rgb)
    size = f"{frame[1]}x{frame[0]}"
    n = int(np.prod(stack)) if stack else 1
    return f"{n} frames of {size}" if stack else size


def layer_frames(data: Any, rgb: bool) -> list[np.ndarray]:
    """Every 2-D frame of a layer's data (leading axes flattened) as float32 RGB in [0, 1]."""
    from .synthesis import as_rgb_float

    stack, _ = frame_shape(tuple(data.shape), rgb)
    return [as_rgb_float(np.asarray(data[index])) for index in np.ndindex(*stack)]


def pairs_from_arrays(items: Sequence[tuple[Any, bool, Any, bool]]) -> list[Pair]:
    """(blur, sharp) float RGB pairs from (blurry data, rgb, sharp data, rgb) layer captures, frame by frame."""
    pairs: list[Pair] = []
    for blur_data, blur_rgb, sharp_data, sharp_rgb in items:
        pairs.extend(zip(layer_frames(blur_data, blur_rgb), layer_frames(sharp_data, sharp_rgb)))
    return pairs


def fit_patch(sizes: Sequence[tuple[int, int]], patch: int) -> tuple[int, Optional[str]]:
    """The patch size to train with (clamped to the smallest image) and a note saying so, or ValueError."""
    if not sizes:
        raise ValueError("No training pairs.")
    h, w = min(sizes, key=min)
    smallest = min(h, w)
    if smallest < MIN_SIZE:
        raise ValueError(f"An image is only {w}x{h} px: training needs images of at least {MIN_SIZE}x{MIN_SIZE}.")
    if patch <= smallest:
        return patch, None
    return smallest, f"Patch size reduced from {patch} to {smallest} px: the smallest image is {w}x{h}."


def split_counts(n_pairs: int, val_fraction: float) -> tuple[int, int]:
    """(training, validation) pair counts the training loop's split gives (at least one pair trains)."""
    n_val = min(int(round(n_pairs * val_fraction)), n_pairs - 1) if val_fraction > 0 else 0
    return n_pairs - max(n_val, 0), max(n_val, 0)


def synthesize_pairs(frames: Sequence[np.ndarray], kind: str, count: int, size: int,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (blur, sharp) crops of ``size`` px made from sharp ``frames``: stacks (count, size, size, 3)."""
    from .synthesis import kernel_bank, make_pair

    if not frames:
        raise ValueError("No sharp image to make pairs from.")
    bank = kernel_bank(seed) if kind == "global" else None
    blurs, sharps = [], []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        blur, sharp = make_pair(kind, frames[i % len(frames)], rng, size, list(frames), bank)
        blurs.append(blur)
        sharps.append(sharp)
    return np.stack(blurs).astype(np.float32), np.stack(sharps).astype(np.float32)


def next_free_path(folder: Path, stem: str = "finetuned") -> Path:
    """``folder/stem-N.pt`` with the smallest N not taken, so a new run never overwrites an earlier model."""
    n = 1
    while (folder / f"{stem}-{n}.pt").exists():
        n += 1
    return folder / f"{stem}-{n}.pt"


def format_eta(seconds: float) -> str:
    """'0:42', '12:05' or '1:02:03' for a progress bar."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def crop_box(height: int, width: int, centre: tuple[float, float],
             size: int = PREVIEW_SIZE) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of an at most ``size`` square crop around ``centre``, kept inside the image."""
    ch, cw = min(size, height), min(size, width)
    cy = int(round(centre[0])) if math.isfinite(centre[0]) else height // 2
    cx = int(round(centre[1])) if math.isfinite(centre[1]) else width // 2
    y0 = min(max(cy - ch // 2, 0), height - ch)
    x0 = min(max(cx - cw // 2, 0), width - cw)
    return y0, x0, y0 + ch, x0 + cw


def beside_placement(layer: Any) -> tuple[float, float]:
    """World (y, x) just right of a layer, where new layers made from it do not cover it."""
    try:
        lo, hi = np.asarray(layer.extent.world, dtype=float)[:, -2:]
        return float(lo[0]), float(hi[1] + 0.05 * (hi[1] - lo[1]))
    except Exception:  # unusual layers: fall back to the origin
        return 0.0, 0.0


def describe_training_error(exc: BaseException) -> str:
    """One line for a notification about a failed training run (see ``_widget.describe_error``)."""
    return describe_error(exc, "training", "lower the batch size or the patch size, or train on the CPU")


# --- the worker (runs in a thread; never touches layers or Qt) ------------------------------------
@dataclass
class PreviewJob:
    """The crop of a layer to deblur with the current weights every ``every`` steps."""

    image: np.ndarray  # (h, w, 3) float32 in [0, 1]
    source: str  # layer name
    every: int  # steps between previews


@dataclass
class TrainJob:
    """What one run needs, captured in the main thread."""

    layers: Optional[list[tuple[Any, bool, Any, bool]]]  # (blurry data, rgb, sharp data, rgb) or None
    folder: Optional[str]  # pairs folder (used when layers is None)
    model: str  # "lite" or a checkpoint path
    phase: str
    steps: int
    lr: float
    patch: int
    batch: int
    val_fraction: float
    device: str
    save: Path
    preview: Optional[PreviewJob] = None
    data_label: str = ""
    loss: str = FINE_TUNE["loss"]  # training.DISTANCES: psnr (as the bundled recipe) or mse (the paper's)
    reblur: float = FINE_TUNE["reblur"]  # share of re-blurred content (TrainConfig.reblur)
    rehearse: float = FINE_TUNE["rehearse"]  # share of the general online stream (TrainConfig.rehearse)


@dataclass
class Note:
    """A message for the user from the worker (shown as an info notification)."""

    text: str


@dataclass
class Preview:
    """The preview crop deblurred with the weights of ``step``."""

    image: np.ndarray
    step: int
    phase: str


@dataclass
class TrainOutcome:
    """What the worker returns: the saved checkpoint or a one-line error."""

    path: Optional[Path] = None
    error: Optional[str] = None
    stopped: bool = False
    steps: int = 0
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0


Event = Union["Progress", Note, Preview]


def make_preview(checkpoint: Path, job: PreviewJob, phase: str) -> Preview:
    """Deblur the preview crop with the weights saved in ``checkpoint`` (eval mode, no gradients)."""
    from . import models
    from .training import restore

    ckpt = models.read_checkpoint(checkpoint)
    net = models.model_from_checkpoint(ckpt, str(checkpoint)).eval()
    phase = "joint" if phase not in ("global", "local") else phase
    image = np.clip(restore(net, job.image, phase), 0, 1)
    return Preview(image, int(ckpt.get("step", 0)), str(ckpt.get("phase", phase)))


def run_training(job: TrainJob, stop: Callable[[], bool]) -> Generator[Event, None, TrainOutcome]:
    """Load the pairs, train (yielding Progress, Notes and Previews) and save; returns an outcome (never raises)."""
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="gldeblur-train-"))
    try:
        from . import models
        from .datasets import load_pairs
        from .training import TrainConfig, train

        if job.layers is not None:
            pairs = pairs_from_arrays(job.layers)
        else:
            pairs = load_pairs([job.folder])
        patch, note = fit_patch([p[0].shape[:2] for p in pairs], job.patch)
        if note:
            yield Note(note)
        n_train, n_val = split_counts(len(pairs), job.val_fraction)
        if n_val == 0:
            yield Note(f"{len(pairs)} training pair{'s' * (len(pairs) != 1)} and no validation pair: "
                       "the plot shows the loss only (raise the validation split or add pairs).")
        if job.model == "lite" and not models.bundled_available("lite"):
            yield Note("The bundled 'lite' weights are not installed: training starts from an untrained network.")
        tmp = workdir / "run.pt"
        every = job.preview.every if job.preview else job.steps + 1
        config = TrainConfig(model=job.model, phase=job.phase, steps=job.steps, batch=job.batch, patch=patch,
                             lr=job.lr, val_fraction=job.val_fraction, val_every=max(1, job.steps // 25),
                             checkpoint_every=max(1, every), out=str(tmp), device=job.device, loss=job.loss,
                             reblur=job.reblur, rehearse=job.rehearse if job.reblur > 0 else 0.0,
                             workers=0)  # no processes forked from the viewer; a few layers cut fast in-process
        last: Optional[Progress] = None
        preview_due = False
        for progress in train(config, stop, pairs=pairs, resume=False):
            if job.loss == "psnr":  # -PSNR in dB -> its per-image MSE (geometric mean): one log-scale plot for both
                progress = replace(progress, loss=10 ** (progress.loss / 10))
            last = progress
            yield progress
            if job.preview and preview_due and tmp.is_file():  # the checkpoint of the previous due step
                yield make_preview(tmp, job.preview, progress.phase)
                preview_due = False
            preview_due = preview_due or progress.step % every == 0
        if last is None or not tmp.is_file():
            return TrainOutcome(error="Training ended before the first step: nothing was saved.")
        if job.preview:
            yield make_preview(tmp, job.preview, last.phase)
        ckpt = models.read_checkpoint(tmp)
        ckpt["optimizer"] = None  # a model to use, not a run to resume: half the size
        ckpt["fine_tuned_from"] = job.model
        ckpt["train_data"] = job.data_label
        ckpt.setdefault("train_config", {})["out"] = str(job.save)
        models.write_checkpoint(job.save, ckpt)
        stopped = last.step < last.total or last.phase_index < last.phase_count - 1
        done = last.phase_index * job.steps + last.step
        return TrainOutcome(job.save, stopped=stopped, steps=done, metrics=dict(ckpt.get("metrics", {})),
                            seconds=time.perf_counter() - t0)
    except Exception as exc:  # incl. MemoryError; reported as one notification in the main thread
        log.debug("training failed", exc_info=exc)
        return TrainOutcome(error=describe_training_error(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
