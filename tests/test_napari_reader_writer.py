"""npe2 reader and writer: round trips, RGB detection, pair folders, refusal messages, atomic writes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_gldeblur._reader import get_reader
from napari_gldeblur._writer import write_image

RNG = np.random.default_rng(0)


def read_back(path) -> list:
    reader = get_reader(str(path))
    assert reader is not None, f"no reader for {path}"
    return reader(str(path))


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("shape", [(13, 17), (13, 17, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_is_exact(tmp_path, ext, shape, dtype):
    x = RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    written = write_image(str(tmp_path / f"img{ext}"), x, {"name": "img"})
    [(data, meta, kind)] = read_back(written[0])
    assert kind == "image" and meta["rgb"] == (len(shape) == 3) and meta["name"] == "img"
    assert data.dtype == dtype and data.shape == shape
    np.testing.assert_array_equal(data, x)


def test_float_image_goes_to_tif_exactly_and_is_refused_for_png_and_jpg(tmp_path):
    x = RNG.normal(size=(9, 11)).astype(np.float32)  # negative and > 1 values: clipping would show
    [(data, _, _)] = read_back(write_image(str(tmp_path / "f.tif"), x, {"name": "f"})[0])
    np.testing.assert_array_equal(data, x)
    for ext in (".png", ".jpg"):
        with pytest.raises(ValueError, match=r"cannot hold float32 .*use \.tif"):
            write_image(str(tmp_path / f"f{ext}"), x, {"name": "f"})
        assert not (tmp_path / f"f{ext}").exists()


def test_uint16_to_jpeg_is_refused_and_uint8_jpeg_reads_back(tmp_path):
    with pytest.raises(ValueError, match="JPEG cannot hold uint16"):
        write_image(str(tmp_path / "a.jpg"), np.zeros((8, 8), np.uint16), {"name": "a"})
    x = np.full((16, 16, 3), 120, np.uint8)
    [(data, meta, _)] = read_back(write_image(str(tmp_path / "a.jpg"), x, {"name": "a"})[0])
    assert data.dtype == np.uint8 and meta["rgb"] and np.abs(data.astype(int) - 120).max() <= 2


def test_feature_layer_is_float_tif_only(tmp_path):
    attrs = {"name": "x local features", "metadata": {"napari_gldeblur": {"role": "local"}}}
    x = RNG.random((10, 12)).astype(np.float32)
    with pytest.raises(ValueError, match=r"feature map: save it as \.tif"):
        write_image(str(tmp_path / "feat.png"), x, attrs)
    [(data, _, _)] = read_back(write_image(str(tmp_path / "feat.tif"), x, attrs)[0])
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, x)


def test_stack_needs_tif(tmp_path):
    x = RNG.integers(0, 255, (3, 8, 9), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"holds one 2-D .*use \.tif"):
        write_image(str(tmp_path / "s.png"), x, {"name": "s"})
    [(data, meta, _)] = read_back(write_image(str(tmp_path / "s.tif"), x, {"name": "s"})[0])
    np.testing.assert_array_equal(data, x)
    assert not meta["rgb"]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import napari_gldeblur.imageio as imageio

    def crash_half_way(path, array, fmt, *rest):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(imageio, "_write", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_image(str(tmp_path / "out.tif"), np.zeros((4, 4), np.uint8), {"name": "x"})
    assert list(tmp_path.iterdir()) == []


def test_reader_declines_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "broken.png")) is None
    assert get_reader(str(tmp_path / "missing.png")) is None
    assert get_reader(str(tmp_path / "empty")) is None


def write_pairs(root: Path, sizes: list[tuple[int, int]], seq: str | None = None) -> list[np.ndarray]:
    from skimage.io import imsave

    base = root / seq if seq else root
    blurs = []
    for i, (h, w) in enumerate(sizes):
        blur = RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)
        for kind, img in (("blur", blur), ("sharp", 255 - blur)):
            (base / kind).mkdir(parents=True, exist_ok=True)
            imsave(base / kind / f"{i:03d}.png", img, check_contrast=False)
        blurs.append(blur)
    return blurs


def test_flat_pair_folder_opens_as_blurry_and_sharp_stacks(tmp_path):
    blurs = write_pairs(tmp_path / "set", [(12, 16)] * 3)
    layers = read_back(tmp_path / "set")
    assert [m["name"] for _, m, _ in layers] == ["set blurry", "set sharp"]
    (blur, meta, _), (sharp, _, _) = layers
    assert blur.shape == (3, 12, 16, 3) and meta["rgb"] and len(meta["metadata"]["paths"]) == 3
    np.testing.assert_array_equal(np.asarray(blur), np.stack(blurs))
    np.testing.assert_array_equal(np.asarray(sharp), 255 - np.stack(blurs))


def test_gopro_layout_single_pair_and_padding_of_mixed_sizes(tmp_path):
    [one] = write_pairs(tmp_path / "single", [(10, 14)], seq="SEQ_A")
    (blur, _, _), _ = read_back(tmp_path / "single")
    assert blur.shape == (10, 14, 3)
    np.testing.assert_array_equal(blur, one)

    write_pairs(tmp_path / "gopro", [(10, 14)], seq="GOPR01")
    write_pairs(tmp_path / "gopro", [(12, 11)], seq="GOPR02")
    with pytest.warns(UserWarning, match="zero-padded to 14x12"):
        (blur, _, _), (sharp, _, _) = read_back(tmp_path / "gopro")
    assert blur.shape == sharp.shape == (2, 12, 14, 3)
    assert np.asarray(blur)[0, 10:].max() == 0  # padding, not stretched content


def test_unpaired_file_is_reported_by_name(tmp_path):
    write_pairs(tmp_path / "set", [(8, 8)] * 2)
    (tmp_path / "set" / "sharp" / "001.png").unlink()
    reader = get_reader(str(tmp_path / "set"))
    with pytest.raises(ValueError, match="001.png has no partner"):
        reader(str(tmp_path / "set"))


@pytest.mark.napari
def test_viewer_opens_and_saves_through_the_plugin(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    x = RNG.integers(0, 65535, (20, 24), dtype=np.uint16)
    layer = viewer.add_image(x, name="img16")
    viewer.layers.save(str(tmp_path / "img16.png"), selected=False, plugin="napari-gldeblur")
    [opened] = viewer.open(str(tmp_path / "img16.png"), plugin="napari-gldeblur")
    assert opened is not layer and opened.data.dtype == np.uint16
    np.testing.assert_array_equal(opened.data, x)
    write_pairs(tmp_path / "pairs", [(8, 8)] * 2)
    opened = viewer.open(str(tmp_path / "pairs"), plugin="napari-gldeblur")
    assert [lyr.name for lyr in opened] == ["pairs blurry", "pairs sharp"]


def test_pair_folder_keeps_16_bit_and_mixed_depths_become_float(tmp_path):
    from napari_gldeblur.imageio import write_image_file

    x16 = RNG.integers(0, 65535, (2, 9, 10, 3), dtype=np.uint16)
    for i in range(2):
        for kind in ("blur", "sharp"):
            write_image_file(tmp_path / "deep" / kind / f"{i}.png", x16[i])
    (blur, _, _), _ = read_back(tmp_path / "deep")
    assert blur.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(blur), x16)

    write_image_file(tmp_path / "deep" / "blur" / "2.png", np.full((9, 10, 3), 255, np.uint8))
    write_image_file(tmp_path / "deep" / "sharp" / "2.png", np.full((9, 10, 3), 255, np.uint8))
    (blur, _, _), _ = read_back(tmp_path / "deep")
    assert blur.dtype == np.float32 and blur.shape == (3, 9, 10, 3)
    np.testing.assert_allclose(np.asarray(blur)[2], 1.0)
    np.testing.assert_allclose(np.asarray(blur)[0], x16[0] / 65535, atol=1e-6)


def test_fit_frame_matches_channels_and_pads():
    from napari_gldeblur._reader import fit_frame

    gray = np.full((3, 4), 7, np.uint8)
    out = fit_frame(gray, (5, 4, 4), np.dtype(np.uint8))
    assert out.shape == (5, 4, 4) and (out[:3, :, :3] == 7).all() and (out[:3, :, 3] == 255).all()
    assert (out[3:] == 0).all()
    rgba = np.zeros((2, 2, 4), np.uint16)
    assert fit_frame(rgba, (2, 2, 3), np.dtype(np.uint16)).shape == (2, 2, 3)
    assert fit_frame(np.full((2, 2), 255, np.uint8), (2, 2), np.dtype(np.float32)).max() == 1.0


def test_writer_stores_pixel_size_and_provenance(make_napari_viewer, tmp_path):
    """A layer with 0.25 x 0.5 µm pixels saved as tif holds that resolution (pixels per cm); the provenance the
    Deblur widget put in the layer's metadata is in the TIFF description and a PNG's text chunk."""
    import tifffile

    from napari_gldeblur.imageio import read_description

    viewer = make_napari_viewer()
    prov = {"model": "lite", "model_sha256": "ab" * 32, "strength": [1.0]}
    viewer.add_image(RNG.integers(0, 255, (20, 24), dtype=np.uint8), name="cells", scale=(0.25, 0.5),
                     units=("um", "um"), metadata={"napari_gldeblur": {"role": "image", "provenance": prov}})
    viewer.layers.save(str(tmp_path / "cells.tif"), selected=False, plugin="napari-gldeblur")
    viewer.layers.save(str(tmp_path / "cells.png"), selected=False, plugin="napari-gldeblur")
    with tifffile.TiffFile(tmp_path / "cells.tif") as tif:
        page = tif.pages[0]
        assert page.resolution == pytest.approx((1e4 / 0.5, 1e4 / 0.25)) and int(page.resolutionunit) == 3
    assert read_description(tmp_path / "cells.tif") == prov
    assert read_description(tmp_path / "cells.png") == prov
