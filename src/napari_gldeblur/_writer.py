"""npe2 writer: an image layer to png/tif/jpg keeping its bit depth, a feature map to a float tif.

Policy (never silent clipping or rescaling): png holds uint8/uint16, jpg holds uint8, tif holds any real
dtype and stacks; ``imageio.write_image_file`` refuses anything else with a one-line reason naming the
format to use. Feature maps of the Deblur widget (float32 in [0, 1]) go to tif only. Writing is atomic
(temp file + rename), so a failed save leaves no half file. A tif keeps the layer's pixel size (TIFF
resolution, from the last two axes' scale and length units); the provenance the Deblur widget recorded goes
into the TIFF description or a PNG text chunk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._layers import FEATURE_ROLES, META_KEY, layer_role  # noqa: F401


def write_image(path: str, data: Any, attributes: dict) -> list[str]:
    """Save one image layer to ``path``; returns the written path (npe2 single-layer writer)."""
    from .imageio import write_image_file

    target = Path(path)
    array = np.asarray(data)
    if layer_role(attributes) in FEATURE_ROLES:
        if target.suffix.lower() not in (".tif", ".tiff"):
            name = attributes.get("name", target.stem)
            raise ValueError(f"'{name}' is a float feature map: save it as .tif to keep its values")
        array = array.astype(np.float32, copy=False)
    entry = (attributes.get("metadata") or {}).get(META_KEY) or {}
    provenance = entry.get("provenance") if isinstance(entry, dict) else None
    spacing, unit = pixel_size(attributes)
    return [str(write_image_file(target, array, metadata=provenance, spacing=spacing, unit=unit))]


def pixel_size(attributes: dict) -> tuple[tuple[float, float] | None, str | None]:
    """(y, x) scale of the layer's last two spatial axes and their unit name, or (None, None) without units."""
    scale, units = attributes.get("scale"), attributes.get("units")
    if scale is None or units is None or len(scale) < 2 or len(units) < 2:
        return None, None
    uy, ux = (str(u) for u in units[-2:])
    if uy != ux or uy in ("pixel", "None", ""):
        return None, None
    return (float(scale[-2]), float(scale[-1])), uy
