"""Read and write image files keeping their format and bit depth (Qt-free; shared by the CLI and napari).

``read_image_file`` returns the pixels as stored: uint8 or uint16 PNG (gray, RGB, RGBA), uint8 JPEG/BMP,
and TIFF of any real dtype and any stack shape. Palette, 1-bit and CMYK files become RGB(A)/gray uint8;
8-bit gray+alpha becomes RGBA. ``write_image_file`` writes atomically (temp file in the same folder,
then rename), so an interrupted or failed write never leaves half a file. Pillow reads 16-bit colour PNGs
as 8-bit, so those go through imagecodecs (libpng) instead.

Big stacks: ``open_image_file`` gives a multi-page TIFF as a ``TiffStack`` read one page per frame, and
``TiffFrames`` writes one frame at a time, so neither holds the stack in memory. Files can carry a JSON
description (``metadata``: TIFF ImageDescription, PNG ``tEXt`` chunk, JPEG comment) and a pixel size (TIFF
resolution).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, os.PathLike]
EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_QUALITY = 95
TEXT_KEY = "napari_gldeblur"  # PNG tEXt keyword / TIFF description entry holding our provenance JSON
PER_CM = {"nm": 1e7, "nanometer": 1e7, "um": 1e4, "µm": 1e4, "micron": 1e4, "micrometer": 1e4,
          "mm": 10.0, "millimeter": 10.0, "cm": 1.0, "centimeter": 1.0, "m": 0.01, "meter": 0.01}


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


def open_image_file(path: PathLike):
    """Like ``read_image_file``, but a multi-page TIFF stack comes back as a lazy ``TiffStack``."""
    path = Path(path)
    if image_format(path) == "TIFF" and path.is_file():
        try:
            stack = TiffStack(path)
        except Exception:  # let read_image_file name the problem
            stack = None
        if stack is not None and stack.frames > 1:
            return stack
        if stack is not None:
            stack.close()
    return read_image_file(path)


class TiffStack:
    """A TIFF's first series as an array read one page (frame) at a time: ``shape``, ``dtype``, ``stack[i, j]``."""

    def __init__(self, path: PathLike):
        import tifffile

        self.path = Path(path)
        self._tif = tifffile.TiffFile(self.path)
        series = self._tif.series[0]
        self.shape, self.dtype = tuple(series.shape), np.dtype(series.dtype)
        self.ndim = len(self.shape)
        self._pages = series.pages
        self._stack = self.shape[: self.ndim - len(series.keyframe.shape)]
        self.frames = int(np.prod(self._stack)) if self._stack else 1
        if len(self._pages) != self.frames:
            raise ValueError(f"{path}: TIFF series has {len(self._pages)} pages for {self.frames} frames")
        self.metadata = (self._tif.shaped_metadata or [{}])[0]

    def __getitem__(self, index) -> np.ndarray:
        """Integers and slices over the stack axes (each frame read from its page), anything numpy takes after."""
        index = index if isinstance(index, tuple) else (index,)
        n = len(self._stack)
        head = list(index[:n]) + [slice(None)] * (n - min(n, len(index)))
        picks = [range(size)[h] for size, h in zip(self._stack, head)]  # an int, or a range for a slice
        combos = itertools.product(*[p if isinstance(p, range) else [p] for p in picks])
        frames = [self._pages[int(np.ravel_multi_index(c, self._stack)) if n else 0].asarray()[index[n:]] for c in combos]
        kept = [len(p) for p in picks if isinstance(p, range)]
        if not frames:
            raise IndexError(f"empty selection {index} of a stack of shape {self.shape}")
        return frames[0] if not kept else np.stack(frames).reshape(kept + list(frames[0].shape))

    def __array__(self, dtype=None, copy=None):
        return self[:] if dtype is None else self[:].astype(dtype)

    def close(self) -> None:
        self._tif.close()


class TiffFrames:
    """Write an image of ``shape``/``dtype`` to a TIFF one frame at a time (``frames[index] = frame`` in frame
    order), atomically: the file appears at ``close()`` (``discard()`` drops it)."""

    def __init__(self, path: PathLike, shape: tuple[int, ...], dtype, rgb: bool = False,
                 metadata: dict | None = None, spacing: tuple[float, float] | None = None, unit: str | None = None):
        import tifffile

        self.path, self.shape, self.dtype, self.ndim = Path(path), tuple(shape), np.dtype(dtype), len(shape)
        self._stack = self.shape[: self.ndim - (3 if rgb else 2)]
        self._next, self._metadata = 0, None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix)
        os.close(fd)
        big = int(np.prod(self.shape)) * self.dtype.itemsize > 2**31
        self._writer = tifffile.TiffWriter(self._tmp, bigtiff=big)
        self._options = tiff_options(self.shape, rgb, metadata, spacing, unit) | {"contiguous": True}
        self._options["metadata"] = {"shape": list(self.shape), **self._options.get("metadata", {})}

    def __setitem__(self, index, frame) -> None:
        index = index if isinstance(index, tuple) else (index,)
        flat = int(np.ravel_multi_index(index, self._stack)) if self._stack else 0
        if flat != self._next:
            raise ValueError(f"{self.path}: frames must be written in order (got frame {flat}, expected {self._next})")
        self._writer.write(np.asarray(frame, dtype=self.dtype), **self._options)
        self._next += 1

    def set_metadata(self, metadata: dict) -> None:
        """Replace the description's metadata (e.g. provenance known only once every frame is done)."""
        self._metadata = metadata

    def close(self) -> Path:
        if self._metadata is not None and self._next:
            self._writer.overwrite_description(json.dumps({"shape": list(self.shape), TEXT_KEY: self._metadata}))
        self._writer.close()
        expected = int(np.prod(self._stack)) if self._stack else 1
        if self._next != expected:
            self.discard()
            raise ValueError(f"{self.path}: only {self._next} of {expected} frames were written")
        _publish(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._writer.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)


def tiff_options(shape: tuple[int, ...], rgb: bool, metadata: dict | None, spacing, unit) -> dict:
    """tifffile write options: photometric (and alpha) for ``shape``, our JSON ``metadata``, the resolution."""
    options = {"photometric": "rgb" if rgb else "minisblack", **tiff_resolution(spacing, unit)}
    if rgb and shape[-1] == 4:
        options["extrasamples"] = ["unassalpha"]
    if metadata:
        options["metadata"] = {TEXT_KEY: metadata}
    return options


def tiff_resolution(spacing: tuple[float, float] | None, unit: str | None) -> dict:
    """tifffile ``resolution`` (pixels per centimetre) for a (y, x) pixel size in a length unit; {} if unknown."""
    per_cm = PER_CM.get(str(unit).lower()) if unit else None
    if spacing is None or per_cm is None or not all(math.isfinite(v) and v > 0 for v in spacing):
        return {}
    return {"resolution": (per_cm / float(spacing[1]), per_cm / float(spacing[0])), "resolutionunit": "CENTIMETER"}


def png_text(data: bytes, key: str, text: str) -> bytes:
    """A PNG's bytes with a ``tEXt`` chunk (Latin-1 keyword and text) inserted after its header chunk."""
    chunk = key.encode("latin-1") + b"\0" + text.encode("latin-1", "replace")
    body = b"tEXt" + chunk
    block = struct.pack(">I", len(chunk)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return data[:end] + block + data[end:]


def read_description(path: PathLike) -> dict:
    """Our JSON description from a written TIFF or PNG file ({} when there is none)."""
    path = Path(path)
    try:
        if image_format(path) == "TIFF":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return dict((tif.shaped_metadata or [{}])[0].get(TEXT_KEY) or {})
        from PIL import Image

        with Image.open(path) as im:
            if "comment" in im.info:  # JPEG
                return dict(json.loads(im.info["comment"]).get(TEXT_KEY) or {})
            return json.loads(im.info.get(TEXT_KEY, im.text.get(TEXT_KEY, "{}")) if hasattr(im, "text") else "{}")
    except (ValueError, OSError, json.JSONDecodeError):
        return {}


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
def write_image_file(path: PathLike, array: np.ndarray, metadata: dict | None = None,
                     spacing: tuple[float, float] | None = None, unit: str | None = None) -> Path:
    """Write ``array`` to ``path`` in the format its extension names, atomically; returns the path.

    PNG holds uint8/uint16 gray, RGB, RGBA; JPEG and BMP hold uint8 gray/RGB; TIFF holds any real dtype and
    stacks. A dtype or shape the format cannot hold exactly is a ValueError (nothing is rescaled).
    ``metadata`` (JSON-able) goes into the TIFF description or a PNG text chunk; ``spacing`` (y, x pixel size
    in ``unit``) into the TIFF resolution.
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
        _write(Path(tmp), array, fmt, metadata, spacing, unit)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _publish(tmp: str, path: Path) -> None:
    """Give a finished temp file ordinary permissions (mkstemp makes 0600) and move it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


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


def _write(path: Path, array: np.ndarray, fmt: str, metadata: dict | None, spacing, unit) -> None:
    if fmt == "TIFF":
        import tifffile

        colour = array.ndim >= 3 and array.shape[-1] in (3, 4)
        tifffile.imwrite(path, array, **tiff_options(array.shape, colour, metadata, spacing, unit))
    elif fmt == "PNG" and array.dtype == np.uint16 and array.ndim == 3:
        data = encode_png(array)
        path.write_bytes(png_text(data, TEXT_KEY, json.dumps(metadata)) if metadata else data)
    else:
        from PIL import Image, PngImagePlugin

        options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
        if fmt == "PNG" and metadata:
            info = PngImagePlugin.PngInfo()
            info.add_text(TEXT_KEY, json.dumps(metadata))
            options["pnginfo"] = info
        elif fmt == "JPEG" and metadata:  # a COM segment holding {"napari_gldeblur": ...}
            options["comment"] = json.dumps({TEXT_KEY: metadata}).encode()
        im = Image.fromarray(array)
        im.save(path, format=fmt, **options)


def encode_png(array: np.ndarray) -> bytes:
    """A PNG of a uint8/uint16 gray/RGB/RGBA array (imagecodecs/libpng), for what Pillow cannot write."""
    import imagecodecs

    return imagecodecs.png_encode(np.ascontiguousarray(array), level=3)  # benchmarks/bench_png.py
