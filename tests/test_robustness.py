"""Bad options, bad files and faults: each gives one clear line and a non-zero exit, never a hang, a traceback,
a silent wrong result or lost work. One test per defect of the robustness probe, plus a bounded CLI fuzz."""
import os
import pickle
import struct
import threading
import zlib

import numpy as np
import pytest
import torch

from napari_gldeblur import models
from napari_gldeblur.cli import main
from napari_gldeblur.datasets import read_image
from napari_gldeblur.imageio import list_images, read_image_file, write_image_file
from napari_gldeblur.inference import Deblurrer
from napari_gldeblur.network import NetConfig
from napari_gldeblur.tiling import choose_tile


def finishes_within(seconds, fn, *args, **kw):
    """fn's result, or a test failure if it has not returned after ``seconds`` (it then spins on in a thread)."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args, **kw)
        except Exception as e:  # re-raised in the test's thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} did not return within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# 1. no hang
@pytest.mark.parametrize("h,w,overlap", [(2160, 3840, 256), (8000, 8000, 80), (1024, 1024, 600)])
def test_choose_tile_always_returns(h, w, overlap):
    tile = finishes_within(10, choose_tile, h, w, 100, 50_000_000, overlap)
    assert tile is None or tile[0] * tile[1] * 100 <= 50_000_000 or min(tile) <= 2 * overlap


def test_an_overlap_larger_than_the_tiles_is_refused_not_spun_on():
    d = Deblurrer("lite", device="cpu", overlap=600)  # the probe's case: the bundled model, 1024 x 1024
    with pytest.raises(ValueError, match="overlap 600 px is too large"):
        finishes_within(30, d, np.zeros((1024, 1024), np.uint8))


# 2. non-finite weights and output
def test_non_finite_output_is_refused(tiny_checkpoint):
    net = models.load_model(tiny_checkpoint)
    with torch.no_grad():
        net.reconstruction.convs[-1].bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        Deblurrer(net, device="cpu")(np.full((32, 32), 100, np.uint8))


def test_training_that_diverges_exits_non_zero_with_one_line(tmp_path, capsys):
    pairs = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_image_file(pairs / "blur" / name, rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        write_image_file(pairs / "sharp" / name, rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    code, _, err = cli(capsys, "train", "--data", pairs, "--model", "scratch:lite", "--phase", "joint", "--steps", 20,
                       "--lr", 1e12, "--batch", 2, "--patch", 32, "--precision", "fp32", "-o", tmp_path / "m.pt")
    errors = [line for line in err.splitlines() if "gldeblur train" in line]
    assert code == 1 and len(errors) == 1 and "loss became nan" in errors[0] and not (tmp_path / "m.pt").exists()


# 3. float data keeps its values
def test_float_tiff_out_of_range_is_scaled_not_binarised(tmp_path):
    data = np.linspace(-1000, 4576, 64 * 64, dtype=np.float32).reshape(64, 64)
    path = write_image_file(tmp_path / "f.tif", data)
    img = read_image(path)
    assert img.min() == 0 and img.max() == 1 and len(np.unique(img[..., 0])) > 1000


# 4. feature maps of two inputs with one stem
def test_features_of_same_stem_inputs_do_not_overwrite(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "in"
    write_image_file(folder / "x.png", np.full((32, 32), 10, np.uint8))
    write_image_file(folder / "x.tif", np.full((32, 32), 200, np.uint8))
    code, _, err = cli(capsys, "deblur", folder, "-o", tmp_path / "out", "--features", "--model", tiny_checkpoint,
                       "--strength", 1)
    assert code == 1 and "x_local.tif" in err and "rename" in err
    first = read_image_file(tmp_path / "out" / "x.png")
    assert first.mean() < 100  # the maps on disk are x.png's, and x.tif wrote nothing
    assert not (tmp_path / "out" / "x.tif").exists()


# 5-7. options checked before any work
@pytest.mark.parametrize("option,value,message", [
    ("--steps", 0, "--steps must be > 0"), ("--steps", -5, "--steps must be > 0"),
    ("--val-every", 0, "--val-every must be"), ("--checkpoint-every", 0, "--checkpoint-every must be"),
    ("--patch", 0, "--patch must be"), ("--batch", 0, "--batch must be"),
])
def test_train_options_are_checked_up_front(tmp_path, capsys, option, value, message):
    code, _, err = cli(capsys, "train", "--data", tmp_path, option, value, "-o", tmp_path / "m.pt")
    assert code == 1 and message in err and not (tmp_path / "m.pt").exists()


def test_train_into_a_folder_is_refused_first(tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--data", tmp_path, "-o", tmp_path)
    assert code == 1 and "is a folder" in err


# 8. disk full while saving
def test_a_failed_checkpoint_save_is_one_line_and_keeps_the_previous(tmp_path, tiny_checkpoint, monkeypatch):
    target = tmp_path / "keep.pt"
    target.write_bytes(tiny_checkpoint.read_bytes())

    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="cannot write checkpoint .* previous one is kept") as e:
        models.write_checkpoint(target, {"model": {}, "config": {}})
    assert "\n" not in str(e.value)
    assert target.read_bytes() == tiny_checkpoint.read_bytes()


# 9. written files follow the umask
def test_written_images_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_image_file(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


# 10. checkpoint errors: what the file is not, never the unsafe load
class Foreign:
    pass


def test_checkpoint_errors_are_one_clear_line(tmp_path, tiny_checkpoint):
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    torch.save({"model": Foreign(), "config": {}}, tmp_path / "foreign.pt")
    ckpt = models.read_checkpoint(tiny_checkpoint)
    ckpt["config"] = NetConfig(width=8, blocks=1).as_dict()
    torch.save(ckpt, tmp_path / "wide.pt")
    for name, expected in (("noise.pt", "not a readable PyTorch checkpoint"), ("foreign.pt", "is refused"),
                           ("wide.pt", "in the file")):
        with pytest.raises(models.CheckpointError, match=expected) as e:
            models.load_model(tmp_path / name)
        text = str(e.value)
        assert "weights_only=False" not in text and "\x1b" not in text and "\n" not in text
    with pytest.raises(models.CheckpointError, match=r"\(4, 3, 7, 7\) in the file, \(8, 3, 7, 7\)"):
        models.load_model(tmp_path / "wide.pt")


# 11. one- and two-channel last axes
@pytest.mark.parametrize("shape", [(64, 64, 1), (64, 64, 2)])
def test_small_last_axes_are_channels_not_frames(tiny_checkpoint, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    result = Deblurrer(tiny_checkpoint, device="cpu")(img, strength=1)
    assert result.image.shape == shape and len(result.strengths) == shape[-1]


# 12-13. synth input and options
def test_synth_from_a_5d_tiff_names_the_file(tmp_path, capsys):
    write_image_file(tmp_path / "src" / "vol.tif", np.zeros((2, 2, 2, 40, 40), np.uint8))
    code, _, err = cli(capsys, "synth", tmp_path / "src", "-o", tmp_path / "out", "--count", 1, "--size", 16)
    assert code == 1 and "vol.tif" in err and "shape" in err


@pytest.mark.parametrize("value", ["-1", "2"])
def test_synth_refuses_a_procedural_fraction_outside_0_1(tmp_path, capsys, value):
    code, _, err = cli(capsys, "synth", "-o", tmp_path / "out", "--procedural", value)
    assert code == 1 and "--procedural" in err


def test_synth_refuses_to_mix_new_pairs_into_old_ones(tmp_path, capsys):
    args = ("synth", "-o", tmp_path / "out", "--count", 1, "--size", 32, "--procedural", 1)
    assert cli(capsys, *args)[0] == 0
    code, _, err = cli(capsys, *args)
    assert code == 1 and "already holds pairs" in err


# 14. big-endian data
def test_big_endian_uint16_rgb_writes_exactly(tmp_path):
    data = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 900).astype(">u2")
    for ext in ("png", "tif"):
        assert np.array_equal(read_image_file(write_image_file(tmp_path / f"be.{ext}", data)), data)


# and the rest of the probe
def test_an_unusable_output_folder_is_found_before_deblurring(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "file").write_text("x")
    write_image_file(tmp_path / "a.png", np.zeros((32, 32), np.uint8))
    code, out, err = cli(capsys, "deblur", tmp_path / "a.png", "-o", tmp_path / "file" / "sub", "--model", tiny_checkpoint)
    assert code == 1 and "not a writable folder" in err and "deblurred" not in out


def test_hidden_temp_files_are_not_inputs(tmp_path):
    write_image_file(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / ".a.x1y2.png").write_bytes(b"half a file")
    assert [p.name for p in list_images(tmp_path)] == ["a.png"]


def test_a_png_decompression_bomb_is_refused(tmp_path):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 16, 2, 0, 0, 0)  # 10 gigapixels of 16-bit RGB
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(ValueError, match="decompression-bomb"):
        read_image_file(tmp_path / "bomb.png")


# a bounded fuzz over the CLI: random bad options and corrupt files
BAD = [
    ["deblur", "{img}", "-o", "{out}", "--overlap", "-3"], ["deblur", "{img}", "-o", "{out}", "--tile", "5"],
    ["deblur", "{img}", "-o", "{out}", "--strength", "1.5"], ["deblur", "{img}", "-o", "{out}", "--model", "{junk}"],
    ["deblur", "{junk_png}", "-o", "{out}"], ["deblur", "{out}/none.png", "-o", "{out}"],
    ["deblur", "{img}", "-o", "{out}", "--channel-axis", "7"], ["deblur", "{img}", "-o", "{out}", "--device", "tpu"],
    ["train", "--recipe", "{junk}"], ["train", "--data", "{out}", "--lr", "-1", "-o", "{out}/m.pt"],
    ["train", "--data", "{nowhere}", "-o", "{out}/m.pt", "--steps", "1"],
    ["eval", "--data", "{nowhere}"], ["eval", "--data", "{out}", "--model", "{junk}"],
    ["synth", "{nowhere}", "-o", "{out}/s"], ["synth", "-o", "{out}/s", "--count", "0"],
]


def test_cli_fuzz_bad_input_is_one_line_and_non_zero(tmp_path, tiny_checkpoint, capsys):
    img = write_image_file(tmp_path / "img.png", np.zeros((32, 32), np.uint8))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pickle.dumps({"x": 1}) + b"garbage")
    junk_png = tmp_path / "junk.png"
    junk_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    names = dict(img=img, out=tmp_path / "o", junk=junk, junk_png=junk_png, nowhere=tmp_path / "nowhere")
    (tmp_path / "o").mkdir()
    order = np.random.default_rng(0).permutation(len(BAD))
    for i in order:
        argv = [a.format(**names) for a in BAD[i]]
        code, _, err = cli(capsys, *argv)
        assert code != 0, argv
        lines = [line for line in err.strip().splitlines() if line.startswith("gldeblur")]
        assert lines and len(lines) <= 2, (argv, err)
