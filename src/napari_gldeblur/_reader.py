"""npe2 reader: single images (png/jpg/tif/bmp, RGB detected) and folders of blurry/sharp pairs.

A pair folder (flat ``blur/`` + ``sharp/`` or the GoPro layout ``SEQ/blur`` + ``SEQ/sharp``) opens as two
layers, ``<folder> blurry`` and ``<folder> sharp``; with several pairs they are lazy (dask) stacks, one
frame per pair, read only when shown. When the images differ in size every frame is zero-padded at the
bottom/right to the largest size (nothing is cropped away) and a warning says so; when they differ in
bit depth all frames become float32 in [0, 1]. ``get_reader`` returns None for paths it cannot read,
so other readers get their chance.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .imageio import EXTENSIONS

LayerData = tuple[Any, dict, str]
PathLike = Union[str, os.PathLike]


def is_rgb(data: Any) -> bool:
    """Colour images end in 3 (RGB) or 4 (RGBA) channels; gray ones end in the image width."""
    return len(data.shape) >= 3 and data.shape[-1] in (3, 4)


def image_layer(data: Any, name: str, **meta: Any) -> LayerData:
    return data, {"name": name, "rgb": is_rgb(data), "metadata": meta}, "image"


def get_reader(path: Union[PathLike, Sequence[PathLike]]) -> Optional[Callable[..., list[LayerData]]]:
    """A reader for ``path`` (file, pair folder or list of files), or None when we cannot read it."""
    if isinstance(path, (list, tuple)):
        layers = [read_file(p) for p in path]
        if not path or any(lyr is None for lyr in layers):
            return None
        return lambda _path: [lyr for group in layers for lyr in group]
    p = Path(path)
    if p.is_dir():
        return folder_reader(p)
    layers = read_file(p)
    return None if layers is None else (lambda _path: layers)


def read_file(path: PathLike) -> Optional[list[LayerData]]:
    """One image file as a layer, or None when it is not an image we can decode (so napari tries others)."""
    from .imageio import read_image_file

    p = Path(path)
    if p.suffix.lower() not in EXTENSIONS or not p.is_file():
        return None
    try:
        data = read_image_file(p)
    except (ValueError, OSError):
        return None
    return [image_layer(data, p.stem, path=str(p))]


def is_pair_folder(root: Path) -> bool:
    """Flat ``blur/`` + ``sharp/`` or at least one ``SEQ/blur`` + ``SEQ/sharp`` below ``root``."""
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        return True
    try:
        return any((d / "blur").is_dir() and (d / "sharp").is_dir() for d in root.iterdir())
    except OSError:
        return False


def folder_reader(root: Path) -> Optional[Callable[..., list[LayerData]]]:
    """A reader for a pair folder, or None when ``root`` has no blur/sharp layout."""
    if not is_pair_folder(root):
        return None
    return lambda _path: read_pair_folder(root)


def read_pair_folder(root: PathLike) -> list[LayerData]:
    """``<folder> blurry`` and ``<folder> sharp`` layers; ValueError (naming the file) on a broken dataset."""
    from .datasets import find_pairs

    root = Path(root)
    pairs = find_pairs(root)
    blur, sharp = [p[0] for p in pairs], [p[1] for p in pairs]
    shape, dtype = frame_layout(blur + sharp)
    if len(pairs) == 1:
        arrays = [fit_frame(read(p), shape, dtype) for p in (blur[0], sharp[0])]
    else:
        arrays = [lazy_stack(paths, shape, dtype) for paths in (blur, sharp)]
    name = root.name or str(root)
    return [image_layer(arrays[0], f"{name} blurry", paths=[str(p) for p in blur]),
            image_layer(arrays[1], f"{name} sharp", paths=[str(p) for p in sharp])]


def read(path: PathLike) -> np.ndarray:
    from .imageio import read_image_file

    return np.asarray(read_image_file(path))


def image_props(path: PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype as ``read_image_file`` will return them, from the file header (no decoding)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return tuple(series.shape), np.dtype(series.dtype)
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            alpha = "transparency" in im.info
        if mode.startswith("I;16") or mode in ("I", "F"):
            return (h, w), np.dtype(np.uint16 if mode.startswith("I;16") else np.int32 if mode == "I" else np.float32)
        channels = {"L": 1, "1": 1, "LA": 4, "PA": 4, "RGBA": 4, "P": 4 if alpha else 3}.get(mode, 3)
        dtype = np.dtype(np.uint16 if png_bit_depth(path) == 16 else np.uint8)
        return ((h, w) if channels == 1 else (h, w, channels)), dtype
    except Exception:  # unusual header: decode it once
        data = read(path)
        return data.shape, data.dtype


def png_bit_depth(path: Path) -> int:
    """Bit depth from a PNG's IHDR chunk (8 for anything that is not a PNG)."""
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if len(head) == 25 and head[:8] == b"\x89PNG\r\n\x1a\n" else 8


def frame_layout(paths: Sequence[PathLike]) -> tuple[tuple[int, ...], np.dtype]:
    """One frame shape and dtype that holds every image: largest H and W, RGB if any is colour."""
    props = [image_props(p) for p in paths]
    shapes = [s for s, _ in props]
    for p, s in zip(paths, shapes):
        if len(s) > 3 or (len(s) == 3 and s[2] not in (3, 4)):
            raise ValueError(f"{p} holds a stack of shape {s}: pair folders hold single 2-D images")
    h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
    channels = max(s[2] if len(s) == 3 else 1 for s in shapes)  # RGBA only when every colour frame has alpha
    if channels == 4 and any(len(s) == 3 and s[2] == 3 for s in shapes):
        channels = 3
    dtypes = {d for _, d in props}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32)
    shape = (h, w, channels) if channels > 1 else (h, w)
    if len({s[:2] for s in shapes}) > 1:
        warnings.warn(f"images in {Path(paths[0]).parent.parent} differ in size: frames zero-padded to {w}x{h}",
                      stacklevel=2)
    return shape, dtype


def fit_frame(image: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``image`` in the common frame layout: dtype converted by range, channels matched, zero-padded bottom/right."""
    from skimage import util

    if image.dtype != dtype:
        convert = {np.dtype(np.uint8): util.img_as_ubyte, np.dtype(np.uint16): util.img_as_uint}
        image = convert.get(np.dtype(dtype), util.img_as_float32)(image)
    if len(shape) == 3:
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.shape[-1] < shape[2]:  # RGB frame in an RGBA layout: opaque alpha
            opaque = np.iinfo(dtype).max if dtype.kind in "ui" else 1
            image = np.concatenate([image, np.full(image.shape[:2] + (1,), opaque, dtype)], axis=-1)
        image = image[..., : shape[2]]
    elif image.ndim == 3:  # colour frame in a gray layout
        image = image[..., :3].mean(-1).astype(dtype)
    out = np.zeros(shape, dtype)
    h, w = min(image.shape[0], shape[0]), min(image.shape[1], shape[1])
    out[:h, :w] = image[:h, :w]
    return out


def lazy_stack(paths: Sequence[PathLike], shape: tuple[int, ...], dtype: np.dtype):
    """A dask stack reading each frame only when napari shows it."""
    import dask
    import dask.array as da

    def load(p: PathLike) -> np.ndarray:
        return fit_frame(read(p), shape, dtype)

    frames = [da.from_delayed(dask.delayed(load)(p), shape=shape, dtype=dtype) for p in paths]
    return da.stack(frames)
