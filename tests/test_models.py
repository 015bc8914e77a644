"""Checkpoints and the bundled model. The bundled-model checks (marked slow) also measure a candidate before it
ships: ``pytest -m slow tests/test_models.py -k bundled_model --bundled-model runs/candidate.pt``."""
import shutil

import numpy as np
import pytest
import torch

from napari_gldeblur import models, synthesis
from napari_gldeblur.network import DBAFNet, NetConfig

TINY = NetConfig(width=4, blocks=1)


def test_checkpoint_round_trip(tmp_path):
    net = DBAFNet(TINY)
    path = models.write_checkpoint(tmp_path / "a.pt", {"config": TINY.as_dict(), "model": net.state_dict(), "step": 7})
    back = models.load_model(path)
    assert back.config == TINY
    for k, v in net.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    assert models.model_info(path)["step"] == 7
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file
    assert path.stat().st_mode & 0o044  # readable by others (not mkstemp's 0600) unless the umask says so


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_foreign_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"config": TINY.as_dict(), "model": {}, "payload": Evil()}, path)
    with pytest.raises(models.CheckpointError, match="is refused: it holds Python objects besides tensors"):
        models.load_model(path)


@pytest.mark.parametrize("content, match", [(b"", "not a readable PyTorch checkpoint"), (b"\x00garbage", "not a readable PyTorch checkpoint")])
def test_corrupt_files_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(models.CheckpointError, match=match):
        models.load_model(path)
    with pytest.raises(models.CheckpointError, match="not found"):
        models.load_model(tmp_path / "missing.pt")


def test_wrong_dict_and_mismatched_weights(tmp_path):
    p = models.write_checkpoint(tmp_path / "x.pt", {"weights": torch.zeros(1)})
    with pytest.raises(models.CheckpointError, match="not a napari-gldeblur checkpoint"):
        models.load_model(p)
    p = models.write_checkpoint(tmp_path / "y.pt", {"config": NetConfig(8, 1).as_dict(), "model": DBAFNet(TINY).state_dict()})
    with pytest.raises(models.CheckpointError, match="does not match"):
        models.load_model(p)


def test_paper_model_builds_untrained():
    assert models.load_model("paper").config.width == 64


def test_bundled_weights_ship_with_checksum():
    assert models.bundled_available("lite"), "src/napari_gldeblur/weights/lite.pt is missing"
    path = models.verify_bundled("lite")
    assert path.stat().st_size < 10 * 2**20  # a few MB at most
    info = models.model_info("lite")
    assert info["trained"] and info["config"]["variant"] == "DBAF"


def test_damaged_bundled_weights_are_detected(tmp_path, monkeypatch):
    copy = tmp_path / "lite.pt"
    shutil.copy(models.BUNDLED["lite"], copy)
    shutil.copy(models.BUNDLED["lite"].with_suffix(".sha256"), tmp_path / "lite.sha256")
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setitem(models.BUNDLED, "lite", copy)
    with pytest.raises(models.CheckpointError, match="damaged"):
        models.load_model("lite")


def _held_out(kind: str, seed: int) -> list[np.ndarray]:
    """12 sharp held-out pictures (256 px): ``sharp`` as they are, ``soft`` resampled down and up with noise and JPEG."""
    src = synthesis.skimage_images(synthesis.HELD_OUT)
    return [s for _, s in synthesis.iter_pairs(kind, src, 12, 256, seed=seed, procedural=0.2)]


def _fresh_blur(seed: int = 103):
    """12 held-out pictures (256 px) under kernels drawn fresh from the blur families (``degradations.BLUR_MIX``:
    shake, shake + defocus, Gaussian, defocus) with camera noise and JPEG, saved in 8 bits as the evaluation sets
    are (so a frame the gate leaves alone gains exactly 0 dB)."""
    from napari_gldeblur.datasets import DegradationStream
    from napari_gldeblur.degradations import BLUR_MIX
    from napari_gldeblur.evaluation import as_saved

    src = synthesis.skimage_images(synthesis.HELD_OUT)
    pairs = DegradationStream(src, 256, "uniform", seed, dead_leaves=0.0, mix=BLUR_MIX).fixed_pairs(12, 256, seed)
    return [(as_saved(blur), sharp) for blur, sharp in pairs]


@pytest.mark.slow
def test_bundled_model_raises_psnr_on_fresh_blur(bundled_model):
    """Strength 1, fp32, blur it never saw: mean gain >= +0.35 dB and no picture worse than its input (the
    bundled weights measured +0.99, worst +0.20; the clipped_long ones before them +0.94, worst +0.23; an earlier
    bundled model fails it since targets keep lifted highlights clipped: +0.56, worst -0.84, a white light
    dimmed; stage 7, trained on one fixed kernel bank, failed it with a worst of -0.47, measured before the
    inputs were 8-bit and the kernels centred)."""
    from napari_gldeblur.evaluation import model_restorer, psnr_gains

    gains = psnr_gains(model_restorer(bundled_model, device="cpu", precision="fp32"), _fresh_blur())
    assert np.mean(gains) >= 0.35 and min(gains) >= 0.0, np.round(gains, 2)


@pytest.mark.slow
def test_bundled_model_limits_harm_at_full_strength(bundled_model):
    """Strength 1, fp32: the network alone sharpens nearly sharp pictures (a 0.5 px Gaussian; seed 104) and soft
    ones (seed 105) past their reference, which is why auto strength is the default. Bounds on that harm:
    nearly sharp lose at most 2.5 dB on average, soft at most 5 dB, and sharp pictures come back at >= 44 dB
    (the bundled model measured -0.60, -3.43 and 49.4; the one before it -1.30, -4.07 and 46.6)."""
    from napari_gldeblur.evaluation import model_restorer, nearly_sharp, psnr, psnr_gains

    restore = model_restorer(bundled_model, device="cpu", precision="fp32")
    sharps, softs = _held_out("sharp", 104), _held_out("soft", 105)
    near = psnr_gains(restore, [(nearly_sharp(s), s) for s in sharps])
    assert np.mean(near) >= -2.5, np.round(near, 2)
    soft = psnr_gains(restore, [(nearly_sharp(s), s) for s in softs])
    assert np.mean(soft) >= -5.0, np.round(soft, 2)
    assert np.mean([psnr(restore(s), s) for s in sharps]) >= 44.0


@pytest.mark.slow
def test_bundled_model_at_auto_strength_leaves_sharp_and_nearly_sharp_pictures_alone(bundled_model):
    """Auto strength (the widget's, the CLI's and ``Deblurrer()``'s default), fp32, on the pictures above: 12 of 12
    sharp pictures come back unchanged, every nearly sharp one and every soft one within 0.5 dB (measured 0.00;
    an earlier bundled model lost 1.77 dB on soft ones), and fresh blur is not made worse on average
    (measured +0.09, the model bundled before +0.17: the gate keeps the change only where it is large against
    the detail already there)."""
    from napari_gldeblur.evaluation import model_restorer, nearly_sharp, psnr_gains

    restore = model_restorer(bundled_model, device="cpu", precision="fp32", strength="auto")
    sharps, softs = _held_out("sharp", 104), _held_out("soft", 105)
    assert all(np.array_equal(restore(s), np.round(s * 255) / 255) for s in sharps)
    near = psnr_gains(restore, [(nearly_sharp(s), s) for s in sharps])
    assert min(near) >= -0.5, np.round(near, 2)
    soft = psnr_gains(restore, [(nearly_sharp(s), s) for s in softs])
    assert min(soft) >= -0.5, np.round(soft, 2)
    assert np.mean(psnr_gains(restore, _fresh_blur())) >= 0.0


@pytest.mark.parametrize("gate", [[0.5], ["a", 1], [2.0, 1.0], [-1, 1], [0, float("inf")]])
def test_a_bad_auto_strength_gate_is_a_checkpoint_error(tmp_path, make_checkpoint, gate):
    path = make_checkpoint(tmp_path / "t.pt")
    models.write_checkpoint(path, models.read_checkpoint(path) | {"auto_strength": gate})
    with pytest.raises(models.CheckpointError, match="auto-strength gate"):
        models.load_model(path)


def test_a_gate_on_an_unknown_measure_is_a_checkpoint_error(tmp_path, make_checkpoint):
    path = make_checkpoint(tmp_path / "t.pt")
    gated = models.read_checkpoint(path) | {"auto_strength": [1.0, 2.0], "auto_strength_measure": "sharpness"}
    models.write_checkpoint(path, gated)
    with pytest.raises(models.CheckpointError, match="measures are change / detail, smoothed change / detail"):
        models.load_model(path)


def test_checkpoint_round_trip_with_blocks_per_scale(tmp_path):
    config = NetConfig(width=4, blocks=(1, 1, 2))
    net = DBAFNet(config)
    path = models.write_checkpoint(tmp_path / "b.pt", {"config": config.as_dict(), "model": net.state_dict()})
    assert models.load_model(path).config == config
