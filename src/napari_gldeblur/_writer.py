"""npe2 writer: an image layer to png/tif/jpg keeping its bit depth, a feature map to a float tif.

Policy (never silent clipping or rescaling): png holds uint8/uint16, jpg holds uint8, tif holds any real
dtype and stacks; ``imageio.write_image_file`` refuses anything else with a one-line reason naming the
format to use. Feature maps of the Deblur widget (float32 in [0, 1]) go to tif only. Writing is atomic
(temp file + rename), so a failed save leaves no half file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._layers import FEATURE_ROLES, layer_role  # noqa: F401


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
    return [str(write_image_file(target, array))]
