"""Sample data: blurry scenes made at run time from scikit-image's pictures with our own blur synthesis.

Each sample returns the blurry image and its sharp reference (8-bit RGB, as a camera would give).
Sources are the images held out of every training set (``synthesis.HELD_OUT``), and the random
generator is seeded, so the samples are the same on every machine and never seen in training.
"""
from __future__ import annotations

import numpy as np

SIZE = 384  # big enough to show structure, small enough to deblur in seconds on a CPU
LayerData = tuple[np.ndarray, dict, str]


def blurry_scene(kind: str, source: str, others: tuple[str, ...], seed: int, size: int = SIZE) -> list[LayerData]:
    """A (blurry, sharp) pair of ``kind`` ("dynamic" or "global") as two napari image layers."""
    from . import synthesis

    images = dict(zip((source, *others), synthesis.skimage_images((source, *others))))
    rng = np.random.default_rng(seed)
    blur, sharp = synthesis.make_pair(kind, images[source], rng, size, [images[o] for o in others])
    label = "moving object" if kind == "dynamic" else "camera shake"
    return [
        (synthesis.to_uint8(sharp), {"name": f"sharp reference ({label})", "rgb": True, "visible": False}, "image"),
        (synthesis.to_uint8(blur), {"name": f"blurry scene ({label})", "rgb": True}, "image"),
    ]


def dynamic_scene() -> list[LayerData]:
    """Objects moving over a slightly shaken background (GoPro-like averaging of a sharp burst)."""
    return blurry_scene("dynamic", "coffee", ("chelsea", "rocket"), seed=6)


def global_blur() -> list[LayerData]:
    """The whole picture blurred by one camera-shake kernel."""
    return blurry_scene("global", "chelsea", (), seed=6)
