import numpy as np
import pytest

from napari_gldeblur.cli import main
from napari_gldeblur.evaluation import psnr
from napari_gldeblur.imageio import read_image_file, write_image_file

RNG = np.random.default_rng(0)


@pytest.fixture
def inputs(tmp_path):
    """A folder with an 8-bit RGB png, a 16-bit RGB png, a 16-bit gray stack tif and a jpg, plus a float tif."""
    folder = tmp_path / "in"
    write_image_file(folder / "rgb.png", RNG.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    write_image_file(folder / "deep.png", RNG.integers(0, 65536, (24, 30, 3), dtype=np.uint16))
    write_image_file(folder / "stack.tif", RNG.integers(0, 65536, (2, 24, 30), dtype=np.uint16))
    write_image_file(folder / "photo.jpg", RNG.integers(0, 256, (24, 30), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")  # ignored inside folders
    single = write_image_file(tmp_path / "micro.tif", (RNG.random((20, 22)) * 500 - 20).astype(np.float32))
    return folder, single


def run(capsys, *argv):
    code = main(["deblur", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_files_and_folders_keep_format_and_bit_depth(tmp_path, inputs, tiny_checkpoint, capsys):
    folder, single = inputs
    out = tmp_path / "out"
    code, stdout, err = run(capsys, folder, single, "-o", out, "--model", tiny_checkpoint, "--device", "cpu")
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["deep.png", "micro.tif", "photo.jpg", "rgb.png", "stack.tif"]
    for name in names:
        src = single if name == "micro.tif" else folder / name
        a, b = read_image_file(src), read_image_file(out / name)
        assert (b.shape, b.dtype) == (a.shape, a.dtype), name
    assert read_image_file(out / "deep.png").max() > 255  # still 16-bit data
    assert "deblurred 5 of 5" in stdout


@pytest.mark.cuda
def test_cuda_device_writes_what_the_cpu_writes(tmp_path, inputs, tiny_checkpoint, capsys):
    folder, _ = inputs
    for device in ("cpu", "cuda"):
        code, _, err = run(capsys, folder / "deep.png", "-o", tmp_path / device, "--model", tiny_checkpoint,
                           "--device", device, "--precision", "fp32")
        assert code == 0, err
    a, b = (read_image_file(tmp_path / d / "deep.png") for d in ("cpu", "cuda"))
    assert a.dtype == b.dtype == np.uint16 and psnr(a / 65535.0, b / 65535.0) >= 45


def test_bad_file_is_one_line_and_the_rest_still_run(tmp_path, inputs, tiny_checkpoint, capsys):
    folder, _ = inputs
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    code, _, err = run(capsys, folder, tmp_path / "missing.tif", "-o", tmp_path / "out", "--model", tiny_checkpoint)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("gldeblur deblur:")]
    assert len(lines) == 2
    assert any("broken.png" in line for line in lines) and any("missing.tif" in line for line in lines)
    assert "Traceback" not in err
    assert (tmp_path / "out" / "rgb.png").is_file() and (tmp_path / "out" / "stack.tif").is_file()
    assert not (tmp_path / "out" / "broken.png").exists()


def test_features_are_written_as_float_tifs(tmp_path, inputs, tiny_checkpoint, capsys):
    folder, _ = inputs
    out = tmp_path / "out"
    code, _, err = run(capsys, folder / "rgb.png", folder / "stack.tif", "-o", out, "--model", tiny_checkpoint,
                       "--features")
    assert code == 0, err
    for stem, shape in (("rgb", (24, 30)), ("stack", (2, 24, 30))):
        for role in ("local", "global", "attention"):
            m = read_image_file(out / f"{stem}_{role}.tif")
            assert m.dtype == np.float32 and m.shape == shape
            assert 0 <= m.min() and m.max() <= 1


def test_tiles_option_is_used(tmp_path, tiny_checkpoint, capsys):
    img = RNG.integers(0, 256, (100, 140, 3), dtype=np.uint8)
    src = write_image_file(tmp_path / "big.png", img)
    fixed = ("--model", tiny_checkpoint, "--precision", "fp32", "--strength", "1")  # auto would leave noise alone
    code_a, _, _ = run(capsys, src, "-o", tmp_path / "a", *fixed)
    code_b, _, _ = run(capsys, src, "-o", tmp_path / "b", *fixed, "--tile", "80", "--overlap", "24")
    assert code_a == code_b == 0
    a, b = read_image_file(tmp_path / "a" / "big.png"), read_image_file(tmp_path / "b" / "big.png")
    assert psnr(a / 255.0, b / 255.0) >= 45  # seamless tiles
    assert (a != b).any()  # ... but tiles were used: not bit-identical to the whole-image pass


def test_refuses_to_overwrite_inputs(tmp_path, inputs, tiny_checkpoint, capsys):
    folder, _ = inputs
    before = (folder / "rgb.png").read_bytes()
    code, _, err = run(capsys, folder / "rgb.png", "-o", folder, "--model", tiny_checkpoint)
    assert code == 1 and "overwrite the input" in err
    assert (folder / "rgb.png").read_bytes() == before


def test_same_name_from_two_folders_is_reported(tmp_path, tiny_checkpoint, capsys):
    for sub in ("a", "b"):
        write_image_file(tmp_path / sub / "x.png", RNG.integers(0, 256, (16, 16), dtype=np.uint8))
    code, _, err = run(capsys, tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", "--model", tiny_checkpoint)
    assert code == 1 and "already wrote" in err


@pytest.mark.parametrize("argv, message", [
    (["-o", "OUT"], "give INPUT"),
    (["IN", "-o", "OUT", "--model", "no_such_model.pt"], "checkpoint not found"),
    (["IN", "-o", "OUT", "--device", "warp9"], "unknown device"),
    (["IN", "-o", "OUT", "--strength", "1.5"], "--strength must be between 0 and 1"),
    (["IN", "-o", "OUT", "--strength", "strong"], "--strength must be between 0 and 1 or 'auto'"),
])
def test_usage_errors_are_one_line(tmp_path, inputs, argv, message, capsys):
    folder, _ = inputs
    argv = [str(folder) if a == "IN" else str(tmp_path / "o") if a == "OUT" else a for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err
    assert len(err.strip().splitlines()) == 1


def test_sample_runs_end_to_end(tmp_path, tiny_checkpoint, capsys):
    code, stdout, err = run(capsys, "--sample", "-o", tmp_path / "s", "--model", tiny_checkpoint, "--features")
    assert code == 0, err
    names = {p.name for p in (tmp_path / "s").iterdir()}
    assert {"sample_blurry.png", "sample_sharp.png", "sample_deblurred.png", "sample_attention.tif"} <= names
    out = read_image_file(tmp_path / "s" / "sample_deblurred.png")
    assert out.shape == read_image_file(tmp_path / "s" / "sample_blurry.png").shape
    assert "PSNR" in stdout


@pytest.mark.parametrize("chosen", [0.0, 1.0])
def test_sample_says_what_strength_1_gives_when_auto_holds_back(tmp_path, tiny_checkpoint, capsys, monkeypatch,
                                                                 chosen):
    from napari_gldeblur import inference

    monkeypatch.setattr(inference, "auto_strength", lambda before, after, levels, measure: chosen)
    code, stdout, err = run(capsys, "--sample", "-o", tmp_path / "s", "--model", tiny_checkpoint)
    assert code == 0, err
    assert ("with --strength 1:" in stdout) == (chosen < 1), stdout


def test_strength_zero_writes_the_input_back(tmp_path, inputs, tiny_checkpoint, capsys):
    folder, _ = inputs
    code, _, err = run(capsys, folder / "rgb.png", "-o", tmp_path / "o", "--model", tiny_checkpoint, "--strength", "0")
    assert code == 0, err
    np.testing.assert_array_equal(read_image_file(tmp_path / "o" / "rgb.png"), read_image_file(folder / "rgb.png"))


def test_auto_strength_is_the_default_and_equals_a_fixed_strength(tmp_path, inputs, tiny_checkpoint, capsys):
    from napari_gldeblur.inference import Deblurrer

    folder, _ = inputs
    code, _, err = run(capsys, folder / "rgb.png", "-o", tmp_path / "o", "--model", tiny_checkpoint)
    assert code == 0, err
    image = read_image_file(folder / "rgb.png")
    chosen = Deblurrer(tiny_checkpoint)(image, strength="auto")
    np.testing.assert_array_equal(read_image_file(tmp_path / "o" / "rgb.png"), chosen.image)
    fixed = Deblurrer(tiny_checkpoint)(image, strength=chosen.strengths[0]).image
    np.testing.assert_array_equal(chosen.image, fixed)
