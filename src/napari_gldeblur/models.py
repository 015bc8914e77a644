"""Bundled weights and safe checkpoint I/O: ``load_model("lite" | "paper" | path)``.

A checkpoint is a plain dict saved with ``torch.save`` and always loaded with ``weights_only=True``
(no arbitrary pickles): ``{"config": {...}, "phase", "step", "model": state_dict, "optimizer":
state_dict | None, "metrics": {...}}``, optionally ``"auto_strength": [low, high]``, the auto-strength gate
tuned for these weights (``strength.auto_strength``; absent: the bundled model's), and ``"auto_strength_measure"``,
the measure it is on (absent: change / detail). The bundled
``weights/lite.pt`` is such a dict without optimizer state; its SHA-256 sits beside it in ``lite.sha256``
and is verified before loading.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .network import CONFIGS, DBAFNet, NetConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED = {"lite": WEIGHTS_DIR / "lite.pt"}


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or not ours; the message names the file."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """A one-line description of an exception (its class name when it has no message)."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``); raise CheckpointError with the file name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if isinstance(e, pickle.UnpicklingError) and "Unsupported global" in str(e):  # foreign objects: never load
            raise CheckpointError(f"{path} is refused: it holds Python objects besides tensors, and only plain "
                                  "weight files are loaded") from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (corrupt, truncated or another "
                              "format); expected a file written by gldeblur train") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a napari-gldeblur checkpoint (no 'model'/'config' entries)")
    return ckpt


def write_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    """Save atomically (temp file + rename) so an interrupted save never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        try:
            torch.save(ckpt, tmp)
        except (OSError, RuntimeError) as e:  # disk full, quota, I/O error: torch says "file write failed"
            raise OSError(f"cannot write checkpoint {path} ({first_line(e, 120)}); the previous one is kept") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def model_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint") -> DBAFNet:
    """Build the network a checkpoint describes and load its weights."""
    try:
        net = DBAFNet(NetConfig(**ckpt["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source} has an unknown network config {ckpt['config']}: {first_line(e)}") from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(ckpt["model"]))
    unexpected = sorted(set(ckpt["model"]) - set(expected))
    wrong = [k for k in expected if k in ckpt["model"] and tuple(ckpt["model"][k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        k = (wrong or missing or unexpected)[0]
        detail = (f"{k} is {tuple(ckpt['model'][k].shape)} in the file, {tuple(expected[k].shape)} in the network"
                  if wrong else f"{k} is {'missing' if missing else 'not in the network'}")
        raise CheckpointError(f"{source} does not match its config {NetConfig(**ckpt['config'])}: {detail} "
                              f"({len(wrong) + len(missing) + len(unexpected)} tensors differ)")
    net.load_state_dict(ckpt["model"])
    for name, value in ckpt["model"].items():
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            raise CheckpointError(f"{source} holds non-finite weights ({name}): it comes from a diverged run")
    if ckpt.get("auto_strength") is not None:
        net.auto_strength = auto_strength_gate(ckpt["auto_strength"], source)
        net.auto_strength_measure = gate_measure(ckpt.get("auto_strength_measure"), source)
    return net


def gate_measure(value: Any, source: str = "checkpoint") -> str:
    """The measure a checkpoint's gate is on (``strength.MEASURES``; absent: the plugin's first, change / detail)."""
    from .strength import DEFAULT_MEASURE, MEASURES

    if value is None:
        return DEFAULT_MEASURE
    if value not in MEASURES:
        raise CheckpointError(f"{source} has an auto-strength gate on {value!r}: known measures are "
                              f"{', '.join(MEASURES)}")
    return value


def auto_strength_gate(value: Any, source: str = "checkpoint") -> tuple[float, float]:
    """A checkpoint's auto-strength gate as (low, high), checked: two finite numbers, 0 <= low <= high."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise CheckpointError(f"{source} has an auto-strength gate {value!r}, not two numbers") from None
    if not (0 <= low <= high < float("inf")):
        raise CheckpointError(f"{source} has an auto-strength gate {value!r}: need finite 0 <= low <= high")
    return low, high


def verify_bundled(name: str) -> Path:
    """Path of a bundled weight file after checking its SHA-256 against the shipped checksum."""
    path = BUNDLED[name]
    expected = path.with_suffix(".sha256").read_text().split()[0]
    actual = sha256(path)
    if actual != expected:
        raise CheckpointError(f"bundled weights {path.name} are damaged (sha256 {actual[:12]}… != {expected[:12]}…)")
    return path


def bundled_available(name: str = "lite") -> bool:
    return name in BUNDLED and BUNDLED[name].is_file()


def load_model(model: str | os.PathLike = "lite") -> DBAFNet:
    """``"lite"`` (bundled, trained), ``"paper"`` (paper-size, random weights) or a checkpoint path."""
    if isinstance(model, str) and model in CONFIGS:
        if bundled_available(model):
            ckpt = read_checkpoint(verify_bundled(model))
            return model_from_checkpoint(ckpt, f"bundled {model}").eval()
        if model == "lite":
            warnings.warn("bundled 'lite' weights are not installed: using an UNTRAINED network", stacklevel=2)
        return DBAFNet(CONFIGS[model]).eval()
    path = Path(model)
    return model_from_checkpoint(read_checkpoint(path), str(path)).eval()


def model_identity(model: Any, net: DBAFNet | None = None) -> dict[str, str]:
    """{"name", "sha256"} naming a model for provenance: the bundled file's checksum, a checkpoint file's
    SHA-256, or for an in-memory network the SHA-256 of its weights."""
    if isinstance(model, str) and model in CONFIGS:
        if bundled_available(model):
            return {"name": model, "sha256": BUNDLED[model].with_suffix(".sha256").read_text().split()[0]}
        return {"name": f"{model} (untrained)", "sha256": "none"}
    if isinstance(model, (str, os.PathLike)):
        return {"name": str(Path(model).resolve()), "sha256": sha256(model)}
    h = hashlib.sha256()
    for value in (net or model).state_dict().values():
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return {"name": "in-memory network", "sha256": h.hexdigest()}


def model_info(model: str | os.PathLike = "lite") -> dict[str, Any]:
    """Config, phase, step and metrics of a model without building it (for GUIs and ``gldeblur eval``)."""
    if isinstance(model, str) and model in CONFIGS:
        if not bundled_available(model):
            return {"config": CONFIGS[model].as_dict(), "trained": False}
        model = verify_bundled(model)
    ckpt = read_checkpoint(model)
    return {k: v for k, v in ckpt.items() if k not in ("model", "optimizer")} | {"trained": True}
