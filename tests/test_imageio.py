import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from napari_gldeblur import imageio
from napari_gldeblur.imageio import decode_png, encode_png, read_image_file, write_image_file

RNG = np.random.default_rng(0)


def rand(shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (RNG.random(shape) * 10 - 3).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("ext, shape, dtype", [
    (".png", (9, 11), np.uint8), (".png", (9, 11, 3), np.uint8), (".png", (9, 11, 4), np.uint8),
    (".png", (9, 11), np.uint16), (".png", (9, 11, 3), np.uint16), (".png", (9, 11, 4), np.uint16),
    (".bmp", (9, 11), np.uint8), (".bmp", (9, 11, 3), np.uint8),
    (".tif", (9, 11), np.uint8), (".tif", (9, 11, 3), np.uint16), (".tiff", (9, 11, 4), np.uint8),
    (".tif", (9, 11), np.float32), (".tif", (2, 9, 11), np.float64), (".tif", (2, 9, 11, 3), np.uint16),
    (".tif", (9, 11), np.int16),
])
def test_lossless_round_trip_keeps_dtype_and_shape(tmp_path, ext, shape, dtype):
    a = rand(shape, dtype)
    path = write_image_file(tmp_path / f"x{ext}", a)
    b = read_image_file(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_jpeg_is_lossy_uint8(tmp_path):
    yy, xx = np.mgrid[:32, :40]
    a = np.stack([xx * 6, yy * 7, xx + yy], -1).astype(np.uint8)
    b = read_image_file(write_image_file(tmp_path / "x.jpg", a))
    assert b.dtype == np.uint8 and b.shape == a.shape
    assert np.abs(b.astype(int) - a).mean() < 3


def png_bytes(w: int, h: int, depth: int, colour: int, raw: bytes) -> bytes:
    """A PNG file from already filtered scanlines (reference framing: signature, IHDR, IDAT, IEND)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (imageio.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def filtered_png(a: np.ndarray, filters: list[int]) -> bytes:
    """A PNG of an 8-bit (H, W, C) array with the given filter type per row (forward filters, reference code)."""
    h, w, c = a.shape
    cur = a.reshape(h, w * c).astype(np.int16)
    rows = []
    for r in range(h):
        x = cur[r]
        up = cur[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(c, np.int16), x[:-c]])
        upleft = np.concatenate([np.zeros(c, np.int16), up[:-c]])
        p = left + up - upleft
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        kind = filters[r % len(filters)]
        pred = [0 * x, left, up, (left + up) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((x - pred) & 0xFF).astype(np.uint8).tobytes())
    return png_bytes(w, h, 8, {1: 0, 2: 4, 3: 2, 4: 6}[c], b"".join(rows))


@pytest.mark.parametrize("channels", [3, 4])
def test_png_decoder_undoes_all_five_filters(tmp_path, channels):
    a = rand((13, 17, channels), np.uint8)
    data = filtered_png(a, [0, 1, 2, 3, 4, 4, 3, 1])
    (tmp_path / "f.png").write_bytes(data)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "f.png")), a)  # the reference file is valid
    np.testing.assert_array_equal(decode_png(data), a)


def test_png_decoder_matches_pillow_on_pillow_files(tmp_path):
    a = rand((20, 30, 3), np.uint8)
    a[:, :10] = 7  # flat areas make Pillow's adaptive filtering mix filter types
    Image.fromarray(a).save(tmp_path / "p.png", optimize=True)
    np.testing.assert_array_equal(decode_png((tmp_path / "p.png").read_bytes()), a)


def test_16bit_gray_alpha_png_becomes_rgba(tmp_path):
    a = rand((6, 7, 2), np.uint16)
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in a)
    (tmp_path / "la.png").write_bytes(png_bytes(7, 6, 16, 4, raw))
    b = read_image_file(tmp_path / "la.png")
    assert b.dtype == np.uint16 and b.shape == (6, 7, 4)
    for c in range(3):
        np.testing.assert_array_equal(b[..., c], a[..., 0])
    np.testing.assert_array_equal(b[..., 3], a[..., 1])


def test_png_encoder_output_is_read_by_pillow(tmp_path):
    a = rand((5, 6), np.uint16)
    (tmp_path / "g.png").write_bytes(encode_png(a))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.png"), dtype=np.uint16), a)


def test_palette_png_reads_as_rgb(tmp_path):
    a = rand((8, 9, 3), np.uint8)
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "p.png")
    b = read_image_file(tmp_path / "p.png")
    assert b.shape == (8, 9, 3) and b.dtype == np.uint8


@pytest.mark.parametrize("name, array, message", [
    ("x.png", np.zeros((4, 4), np.float32), "PNG cannot hold float32"),
    ("x.jpg", np.zeros((4, 4), np.uint16), "JPEG cannot hold uint16"),
    ("x.jpg", np.zeros((4, 4, 4), np.uint8), "alpha"),
    ("x.png", np.zeros((2, 5, 6), np.uint8), "use .tif"),
    ("x.gif", np.zeros((4, 4), np.uint8), "unsupported image format"),
    ("x.tif", np.zeros((0, 4), np.uint8), "cannot write"),
    ("x.tif", np.zeros((4, 4), complex), "cannot write"),
])
def test_unwritable_combinations_raise(tmp_path, name, array, message):
    with pytest.raises(ValueError, match=message):
        write_image_file(tmp_path / name, array)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    write_image_file(target, np.full((4, 4), 9, np.uint8))

    def boom(path, array, fmt, *rest):
        path.write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(imageio, "_write", boom)
    with pytest.raises(OSError, match="disk full"):
        write_image_file(target, np.zeros((4, 4), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    assert read_image_file(target)[0, 0] == 9


@pytest.mark.parametrize("name, content, message", [
    ("missing.png", None, "no such file"),
    ("broken.png", b"\x89PNG but not really", "cannot read image"),
    ("broken.tif", b"II*\x00garbage", "cannot read image"),
    ("notes.txt", b"hello", "unsupported image format"),
])
def test_unreadable_files_raise_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_image_file(path)
    assert name in str(info.value) and "\n" not in str(info.value)
