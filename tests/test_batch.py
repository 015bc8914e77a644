"""Files and folders through ``batch``: stacks streamed frame by frame, provenance in the files, torchrun shards."""
import numpy as np
import pytest

from napari_gldeblur import batch
from napari_gldeblur.cli import main
from napari_gldeblur.imageio import TiffFrames, TiffStack, open_image_file, read_description, read_image_file, write_image_file
from napari_gldeblur.inference import Deblurrer

RNG = np.random.default_rng(3)


@pytest.fixture
def deblurrer(tiny_checkpoint):
    return Deblurrer(tiny_checkpoint, device="cpu", precision="fp32")


def test_a_tiff_stack_streams_to_the_same_result_as_in_memory(tmp_path, deblurrer):
    """A (T, Z, Y, X) uint16 stack is read as a lazy TiffStack and written page by page; the pixels equal
    the in-memory result exactly and the file keeps shape, dtype and the provenance of every frame."""
    stack = RNG.integers(0, 4096, (3, 2, 20, 24), dtype=np.uint16)
    src = write_image_file(tmp_path / "in" / "stack.tif", stack)
    assert isinstance(open_image_file(src), TiffStack)
    written = batch.deblur_file(deblurrer, src, tmp_path / "out", strength=1.0)
    out = read_image_file(written[0])
    expected = deblurrer(stack, features=False, strength=1.0).image
    assert out.shape == stack.shape and out.dtype == np.uint16
    np.testing.assert_array_equal(out, expected)
    meta = read_description(written[0])
    assert meta["model_sha256"] == deblurrer.model["sha256"] and len(meta["strength"]) == 6


def test_frames_arrive_in_order_and_a_short_stack_is_refused(tmp_path):
    frames = TiffFrames(tmp_path / "a.tif", (3, 8, 8), np.uint8)
    frames[0] = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="in order"):
        frames[2] = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="only 1 of 3 frames"):
        frames.close()
    assert list(tmp_path.iterdir()) == []  # no half file, no temp file


def test_png_and_tiff_outputs_record_provenance(tmp_path, tiny_checkpoint, capsys):
    """The CLI writes model name and SHA-256, the strength chosen, tile, device, precision and version into
    each file: a PNG text chunk, the TIFF description, a JPEG comment."""
    from napari_gldeblur import __version__
    from napari_gldeblur.models import sha256

    write_image_file(tmp_path / "in" / "a.png", RNG.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    write_image_file(tmp_path / "in" / "b.tif", RNG.random((24, 30)).astype(np.float32))
    write_image_file(tmp_path / "in" / "c.jpg", RNG.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    code = main(["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint),
                 "--device", "cpu", "--precision", "fp32", "--strength", "0.5"])
    assert code == 0, capsys.readouterr().err
    for name in ("a.png", "b.tif", "c.jpg"):
        meta = read_description(tmp_path / "out" / name)
        assert meta["model_sha256"] == sha256(tiny_checkpoint), name
        assert meta["strength"] == [0.5] and meta["device"] == "cpu" and meta["precision"] == "fp32"
        assert meta["software"] == f"napari-gldeblur {__version__}"


def test_torchrun_ranks_share_the_files(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """Under torchrun (RANK/WORLD_SIZE set) each rank deblurs every WORLD_SIZE-th file and nothing else; the
    ranks together cover every file once."""
    for i in range(5):
        write_image_file(tmp_path / "in" / f"f{i}.png", RNG.integers(0, 256, (16, 16), dtype=np.uint8))
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        out = tmp_path / f"out{rank}"
        assert main(["deblur", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_checkpoint),
                     "--device", "cpu"]) == 0
        seen.append(sorted(p.name for p in out.iterdir()))
        assert f"rank {rank} of 2" in capsys.readouterr().out
    assert seen == [["f0.png", "f2.png", "f4.png"], ["f1.png", "f3.png"]]


def test_one_bad_file_does_not_stop_the_rest(tmp_path, deblurrer):
    good = write_image_file(tmp_path / "in" / "good.png", RNG.integers(0, 256, (16, 16), dtype=np.uint8))
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"not a png")
    done = list(batch.deblur_files(deblurrer, [bad, good], tmp_path / "out"))
    assert [d.error is None for d in done] == [False, True]
    assert "bad.png" in done[0].error and "\n" not in done[0].error
    assert done[1].written == [tmp_path / "out" / "good.png"]
