"""Read and write image files keeping their format and bit depth (Qt-free; shared by the CLI and napari).

``read_image_file`` returns the pixels as stored: uint8 or uint16 PNG (gray, RGB, RGBA), uint8 JPEG/BMP,
and TIFF of any real dtype and any stack shape. Palette, 1-bit and CMYK files become RGB(A)/gray uint8;
8-bit gray+alpha becomes RGBA. ``write_image_file`` writes atomically (temp file in the same folder,
then rename), so an interrupted or failed write never leaves half a file. Pillow reads 16-bit colour PNGs
as 8-bit, so those are decoded here with numpy (all five PNG filters) and encoded with zlib directly.
"""
from __future__ import annotations

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


def image_format(path: PathLike) -> str:
    """``PNG``/``JPEG``/``TIFF``/``BMP`` from the file extension; ValueError for anything else."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unsupported image format {ext or '(no extension)'}; use {', '.join(EXTENSIONS)}")
    return FORMATS[ext]


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


def _png_chunks(data: bytes):
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        yield kind, data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            return


def decode_png(data: bytes) -> np.ndarray:
    """Decode a non-interlaced 8/16-bit gray/RGB/gray-alpha/RGBA PNG exactly (numpy; used for 16-bit colour)."""
    header, idat = None, []
    for kind, body in _png_chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None or not idat:
        raise ValueError("broken PNG (no IHDR or IDAT chunk)")
    w, h, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if channels is None or depth not in (8, 16):
        raise ValueError(f"PNG colour type {colour} at {depth} bits is not supported by the exact decoder")
    if interlace:
        raise ValueError("interlaced 16-bit colour PNGs are not supported: re-save without interlacing")
    bpp = channels * depth // 8
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    if raw.size != h * (1 + w * bpp):
        raise ValueError("truncated PNG image data")
    rows = raw.reshape(h, 1 + w * bpp)
    pixels = unfilter_png(rows[:, 0], rows[:, 1:].reshape(h, w, bpp))
    dtype = ">u2" if depth == 16 else np.uint8
    out = pixels.reshape(h, -1).view(dtype).reshape(h, w, channels).astype(np.dtype(dtype).newbyteorder("="))
    if colour == 4:  # gray + alpha -> RGBA, the layout the rest of the package understands
        out = np.concatenate([np.repeat(out[..., :1], 3, axis=-1), out[..., 1:]], axis=-1)
    return out[..., 0] if channels == 1 else out


def unfilter_png(filters: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Undo PNG row filters on (H, W, bpp) bytes.

    Sub/Average/Paeth depend on the reconstructed left pixel, so rows are not independent: the pixels are
    swept along anti-diagonals (r + x = const), whose left, up and up-left neighbours are all done.
    """
    h, w, _ = f.shape
    if not np.any(filters):
        return f.copy()
    if filters.max() > 4:
        raise ValueError(f"bad PNG filter type {int(filters.max())}")
    r = np.zeros((h + 1, w + 1, f.shape[2]), np.int16)  # one zero row/column of padding above and left
    ft = filters.astype(np.int16)
    fi = f.astype(np.int16)
    for d in range(h + w - 1):
        y = np.arange(max(0, d - w + 1), min(h, d + 1))
        x = d - y
        a, b, c = r[y + 1, x], r[y, x + 1], r[y, x]
        kind = ft[y][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([kind == 1, kind == 2, kind == 3, kind == 4], [a, b, (a + b) // 2, paeth], 0)
        r[y + 1, x + 1] = (fi[y, x] + pred) & 0xFF
    return r[1:, 1:].astype(np.uint8)


# --- writing --------------------------------------------------------------------------------------
def write_image_file(path: PathLike, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` in the format its extension names, atomically; returns the path.

    PNG holds uint8/uint16 gray, RGB, RGBA; JPEG and BMP hold uint8 gray/RGB; TIFF holds any real dtype and
    stacks. A dtype or shape the format cannot hold exactly is a ValueError (nothing is rescaled).
    """
    path = Path(path)
    fmt = image_format(path)
    array = np.asarray(array)
    check_writable(array, fmt, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        _write(Path(tmp), array, fmt)
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
        im = Image.fromarray(array.astype(array.dtype.newbyteorder("="), copy=False))
        im.save(path, format=fmt, **options)


def encode_png(array: np.ndarray) -> bytes:
    """A PNG of a uint8/uint16 gray/RGB/RGBA array (filter 0, zlib), for what Pillow cannot write."""
    depth = array.dtype.itemsize * 8
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    colour = {1: 0, 3: 2, 4: 6}[channels]
    rows = array.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
