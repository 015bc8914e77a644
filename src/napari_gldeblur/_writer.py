"""npe2 writer: an image layer to png/tif/jpg keeping its bit depth, a feature map to a float tif.

Policy (never silent clipping or rescaling): png holds uint8/uint16, jpg holds uint8, tif holds any
real dtype and stacks. Anything else is refused with a one-line reason saying which format to use.
Writing is atomic (``imageio.write_image_file``: temp file + rename), so a failed save leaves no half file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}
FEATURE_ROLES = ("local", "global", "attention")  # same roles as _widget.FEATURE_ROLES (kept Qt-free here)


def layer_role(attributes: dict) -> str | None:
    """The role our Deblur widget stored in the layer's metadata (None for other layers)."""
    meta = attributes.get("metadata") or {}
    entry = meta.get("napari_gldeblur") or {}
    return entry.get("role") if isinstance(entry, dict) else None


def check_writable(data: Any, path: Path, name: str = "layer", role: str | None = None) -> None:
    """Raise ValueError with a one-line reason when ``path``'s format cannot hold ``data`` exactly."""
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"cannot save '{name}' as {ext or 'a file without extension'}: use .tif, .png or .jpg")
    fmt, dtype, shape = FORMATS[ext], np.dtype(data.dtype), tuple(data.shape)
    if role in FEATURE_ROLES and fmt != "TIFF":
        raise ValueError(f"'{name}' is a float feature map: save it as .tif to keep its values")
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise ValueError(f"cannot save '{name}' ({dtype} pixels): convert it to uint8, uint16 or float32 first")
    if fmt == "TIFF":
        return
    colour = len(shape) == 3 and shape[-1] in (3, 4)
    if len(shape) != 2 and not colour:
        raise ValueError(f"'{name}' has shape {shape}: {fmt} holds one 2D image, save stacks as .tif")
    if fmt == "JPEG" and colour and shape[-1] == 4:
        raise ValueError(f"'{name}' has an alpha channel: JPEG cannot store it, save as .png or .tif")
    allowed = (np.uint8,) if fmt == "JPEG" else (np.uint8, np.uint16)
    if dtype not in [np.dtype(a) for a in allowed]:
        keep = ".tif" if dtype.kind == "f" else ".png or .tif"
        bits = "8-bit integers" if fmt == "JPEG" else "8/16-bit unsigned integers"
        raise ValueError(f"{fmt} stores {bits} and '{name}' is {dtype}: save as {keep} to keep its values, "
                         "or convert the layer's data type first")


def write_image(path: str, data: Any, attributes: dict) -> list[str]:
    """Save one image layer to ``path``; returns the written path (npe2 single-layer writer)."""
    from .imageio import write_image_file

    target = Path(path)
    role = layer_role(attributes)
    array = np.asarray(data)
    if role in FEATURE_ROLES:
        array = array.astype(np.float32, copy=False)
    check_writable(array, target, attributes.get("name", target.stem), role)
    write_image_file(target, array)
    return [str(target)]
