"""Read and write image files keeping their format and bit depth (Qt-free; shared by the CLI and napari).

``read_image_file`` returns the pixels as stored: uint8 or uint16 PNG (gray, RGB, RGBA), uint8 JPEG/BMP,
and TIFF of any real dtype and any stack shape. Palette, 1-bit and CMYK files become RGB(A)/gray uint8;
8-bit gray+alpha becomes RGBA. ``write_image_file`` writes atomically (temp file in the same folder,
then rename), so an interrupted or failed write never leaves half a file. Pillow reads 16-bit colour PNGs
as 8-bit, so those go through imagecodecs (libpng) instead.
"""
from __future__ import annotations

import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, os.PathLike]
EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_QUALITY = 95


def image_format(path: PathLike) -> str:
    """``PNG``/``JPEG``/``TIFF``/``BMP`` from the file extension; ValueError for anything else."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unsupported image format {ext or '(no extension)'}; use {', '.join(EXTENSIONS)}")
    return FORMATS[ext]


def list_images(folder: PathLike) -> list[Path]:
    """The image files in ``folder`` by name: known extensions, hidden files (e.g. an interrupted write's
    ``.name.XXXX.png`` temp file) left out."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in EXTENSIONS and p.is_file() and not p.name.startswith("."))


# --- reading --------------------------------------------------------------------------------------
def read_image_file(path: PathLike) -> np.ndarray:
    """Pixels of an image file in their stored dtype: (H, W), (H, W, 3|4) or a TIFF stack.

    Raises ValueError naming the file when it is missing, not an image, or in an unsupported format.
    """
    path = Path(path)
    fmt = image_format(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        if fmt == "TIFF":
            import tifffile

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tifffile warns (and returns nothing) on broken files
                array = np.asarray(tifffile.imread(path))
        elif fmt == "PNG" and _png_is_16bit_colour(path):
            array = decode_png(path.read_bytes())
        else:
            array = _read_pillow(path)
    except Exception as e:  # decoder errors come in many types; the user needs one line naming the file
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ValueError(f"{path}: cannot read image ({reason})") from None
    if array.size == 0:
        raise ValueError(f"{path}: cannot read image (no pixel data)")
    return array


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
        elif im.mode == "LA":
            im = im.convert("RGBA")
        elif im.mode == "1":
            im = im.convert("L")
        elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        if im.mode.startswith("I;16"):
            return np.asarray(im, dtype=np.uint16)
        return np.asarray(im)


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return False
    return head[24] == 16 and head[25] in (2, 4, 6)  # bit depth 16; colour RGB, gray+alpha, RGBA


def decode_png(data: bytes) -> np.ndarray:
    """A PNG's pixels exactly, 16-bit colour included (imagecodecs/libpng); refuses decompression bombs by the
    size in its header (Pillow's limit: ``PIL.Image.MAX_IMAGE_PIXELS``, doubled as Pillow does)."""
    import imagecodecs
    from PIL import Image

    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    w, h = struct.unpack(">II", data[16:24])
    if Image.MAX_IMAGE_PIXELS and w * h > 2 * Image.MAX_IMAGE_PIXELS:
        raise ValueError(f"{w} x {h} pixels exceeds the decompression-bomb limit of {2 * Image.MAX_IMAGE_PIXELS}")
    out = np.asarray(imagecodecs.png_decode(data))
    if out.ndim == 3 and out.shape[-1] == 2:  # gray + alpha -> RGBA, the layout the rest of the package understands
        out = np.concatenate([np.repeat(out[..., :1], 3, axis=-1), out[..., 1:]], axis=-1)
    return out


# --- writing --------------------------------------------------------------------------------------
def write_image_file(path: PathLike, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` in the format its extension names, atomically; returns the path.

    PNG holds uint8/uint16 gray, RGB, RGBA; JPEG and BMP hold uint8 gray/RGB; TIFF holds any real dtype and
    stacks. A dtype or shape the format cannot hold exactly is a ValueError (nothing is rescaled).
    """
    path = Path(path)
    fmt = image_format(path)
    array = np.asarray(array)
    if not array.dtype.isnative:  # big-endian data (e.g. from a FITS or TIFF reader): same values, native order
        array = array.astype(array.dtype.newbyteorder("="))
    check_writable(array, fmt, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        _write(Path(tmp), array, fmt)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an image is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def check_writable(array: np.ndarray, fmt: str, path: PathLike = "image") -> None:
    """ValueError with a one-line reason when ``fmt`` cannot store ``array`` exactly."""
    dtype, shape = array.dtype, array.shape
    if dtype.kind not in "uif" or dtype.itemsize > 8 or array.size == 0:
        raise ValueError(f"{path}: cannot write an image of {dtype} pixels and shape {shape}")
    if fmt == "TIFF":
        return
    colour = array.ndim == 3 and shape[-1] in (3, 4)
    if array.ndim != 2 and not colour:
        raise ValueError(f"{path}: {fmt} holds one 2-D gray or RGB(A) image, not shape {shape}; use .tif")
    allowed = ("uint8", "uint16") if fmt == "PNG" else ("uint8",)
    if dtype.name not in allowed:
        raise ValueError(f"{path}: {fmt} cannot hold {dtype} pixels exactly; use .tif")
    if fmt == "JPEG" and colour and shape[-1] == 4:
        raise ValueError(f"{path}: JPEG cannot store an alpha channel; use .png or .tif")


def _write(path: Path, array: np.ndarray, fmt: str) -> None:
    if fmt == "TIFF":
        import tifffile

        colour = array.ndim >= 3 and array.shape[-1] in (3, 4)
        extra = {"extrasamples": ["unassalpha"]} if colour and array.shape[-1] == 4 else {}
        tifffile.imwrite(path, array, photometric="rgb" if colour else "minisblack", **extra)
    elif fmt == "PNG" and array.dtype == np.uint16 and array.ndim == 3:
        path.write_bytes(encode_png(array))
    else:
        from PIL import Image

        options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
        im = Image.fromarray(array)
        im.save(path, format=fmt, **options)


def encode_png(array: np.ndarray) -> bytes:
    """A PNG of a uint8/uint16 gray/RGB/RGBA array (imagecodecs/libpng), for what Pillow cannot write."""
    import imagecodecs

    return imagecodecs.png_encode(np.ascontiguousarray(array), level=3)  # benchmarks/bench_png.py
