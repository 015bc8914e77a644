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

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
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
    if len(pairs) == 1:
        arrays = [np.asarray(fit_frame(read(p), *frame_layout([p]))) for p in (blur[0], sharp[0])]
    else:
        shape, dtype = frame_layout(blur + sharp)
        arrays = [lazy_stack(paths, shape, dtype) for paths in (blur, sharp)]
    name = root.name or str(root)
    return [image_layer(arrays[0], f"{name} blurry", paths=[str(p) for p in blur]),
            image_layer(arrays[1], f"{name} sharp", paths=[str(p) for p in sharp])]


def read(path: PathLike) -> np.ndarray:
    from .imageio import read_image_file

    return np.asarray(read_image_file(path))


def image_props(path: PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the file header (cheap), falling back to decoding the image."""
    try:
        import imageio.v3 as iio

        props = iio.improps(path)
        return tuple(props.shape), np.dtype(props.dtype)
    except Exception:
        data = read(path)
        return data.shape, data.dtype


def frame_layout(paths: Sequence[PathLike]) -> tuple[tuple[int, ...], np.dtype]:
    """One frame shape and dtype that holds every image: largest H and W, RGB if any is colour."""
    props = [image_props(p) for p in paths]
    shapes = [s for s, _ in props]
    h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
    colour = any(len(s) == 3 for s in shapes)
    dtypes = {d for _, d in props}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32)
    shape = (h, w, 3) if colour else (h, w)
    if len(paths) > 1 and len({s[:2] for s in shapes}) > 1:
        warnings.warn(f"images in {Path(paths[0]).parent.parent} differ in size: frames zero-padded to {w}x{h}",
                      stacklevel=2)
    return shape, dtype


def fit_frame(image: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``image`` in the common frame layout: dtype converted, channels matched, zero-padded bottom/right."""
    from skimage.util import img_as_float32

    if image.dtype != dtype:
        image = img_as_float32(image)
    if len(shape) == 3 and image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif len(shape) == 3:
        image = image[..., :3]  # RGBA: drop alpha, the layout is RGB
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
