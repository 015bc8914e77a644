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


def test_bundled_model_raises_psnr_on_a_fixed_synthetic_sample():
    """Regression: the first 12 pairs of the held-out global-blur set (`scripts/make_data.sh`, made here in
    memory: held-out pictures, the training kernel bank, seed 103). Measured gain of the bundled model when
    it was committed (fp32, stage 7): +1.69 dB (per pair -1.1 to +9.9 dB); the test asks for +1.5 dB. (Stage 5
    measured +2.17 here against +1.8 asked; stage 6 gave 0.4-0.7 dB of it back for much less harm to soft
    pictures and measured +1.49 against +1.3 asked; stage 7's dead-leaves content won 0.2 dB back. See
    docs/MODEL_CARD.md.)"""
    from napari_gldeblur.evaluation import model_restorer, psnr_gains

    src = synthesis.skimage_images(synthesis.HELD_OUT)
    pairs = list(synthesis.iter_pairs("global", src, 12, 256, seed=103, procedural=0.2, kernel_seed=1))
    gains = psnr_gains(model_restorer("lite", device="cpu", precision="fp32"), pairs)
    assert np.mean(gains) >= 1.5, np.round(gains, 2)


def test_bundled_model_leaves_nearly_sharp_pictures_alone():
    """Do no harm, on average: 12 held-out pictures (seed 104) blurred by a 0.5 px Gaussian come back no worse
    than the input, and sharp ones come back at >= 48 dB. Measured when committed (fp32, stage 7): mean change
    +0.93 dB, but per picture -5.6 to +13.5 dB (median -0.44: most lose, see docs/MODEL_CARD.md); sharp in,
    51.0 dB out (lowest 36.2). Stage 6: +0.63 dB and 50.3 dB; stage 5: -0.11 dB and 48.3 dB (asked then: -0.5 dB
    and 45 dB)."""
    from napari_gldeblur.evaluation import model_restorer, nearly_sharp, psnr, psnr_gains

    src = synthesis.skimage_images(synthesis.HELD_OUT)
    sharps = [s for _, s in synthesis.iter_pairs("sharp", src, 12, 256, seed=104, procedural=0.2)]
    restore = model_restorer("lite", device="cpu", precision="fp32")
    change = psnr_gains(restore, [(nearly_sharp(s), s) for s in sharps])
    assert np.mean(change) >= 0.0, np.round(change, 2)
    assert np.mean([psnr(restore(s), s) for s in sharps]) >= 48.0


def test_bundled_model_harms_soft_pictures_less_than_stage_5():
    """Soft content (held-out pictures resampled down and up, with noise and JPEG: `--kind soft`, seed 105),
    blurred by a 0.5 px Gaussian. The bundled model still sharpens it past the reference (a known failure of
    "do no harm", see docs/MODEL_CARD.md); this guards the improvement stage 6 was trained for. Measured when
    committed (fp32, stage 7): mean change -5.18 dB (per picture -16.9 to +0.2); stage 6: -5.33 dB; stage 5:
    -8.79 dB. Asked: >= -7 dB."""
    from napari_gldeblur.evaluation import model_restorer, nearly_sharp, psnr_gains

    src = synthesis.skimage_images(synthesis.HELD_OUT)
    softs = [s for _, s in synthesis.iter_pairs("soft", src, 12, 256, seed=105, procedural=0.2)]
    change = psnr_gains(model_restorer("lite", device="cpu", precision="fp32"), [(nearly_sharp(s), s) for s in softs])
    assert np.mean(change) >= -7.0, np.round(change, 2)


def test_bundled_model_at_auto_strength_leaves_sharp_and_soft_pictures_alone():
    """Auto strength (the widget's and the CLI's default) on the held-out pictures of the tests above: the
    issue's "do no harm" per picture. Measured when committed (fp32): global blur +1.58 dB (strength 1: +1.69),
    12 of 12 sharp pictures returned unchanged and their 12 nearly sharp copies too (their change against the
    detail they have: at most 0.32 and 0.49, the gate starts at 0.94), nearly sharp soft pictures -1.77 dB
    (strength 1: -5.18; two of twelve are still sharpened). Asked: +1.5 dB, 12 of 12, every nearly sharp
    picture within 0.5 dB, -3 dB."""
    from napari_gldeblur.evaluation import model_restorer, nearly_sharp, psnr_gains

    src = synthesis.skimage_images(synthesis.HELD_OUT)
    restore = model_restorer("lite", device="cpu", precision="fp32", strength="auto")
    blurred = list(synthesis.iter_pairs("global", src, 12, 256, seed=103, procedural=0.2, kernel_seed=1))
    assert np.mean(psnr_gains(restore, blurred)) >= 1.5
    sharps = [s for _, s in synthesis.iter_pairs("sharp", src, 12, 256, seed=104, procedural=0.2)]
    assert all(np.array_equal(restore(s), np.round(s * 255) / 255) for s in sharps)
    near = psnr_gains(restore, [(nearly_sharp(s), s) for s in sharps])
    assert min(near) >= -0.5, np.round(near, 2)
    softs = [s for _, s in synthesis.iter_pairs("soft", src, 12, 256, seed=105, procedural=0.2)]
    change = psnr_gains(restore, [(nearly_sharp(s), s) for s in softs])
    assert np.mean(change) >= -3.0, np.round(change, 2)


def test_checkpoint_round_trip_with_blocks_per_scale(tmp_path):
    config = NetConfig(width=4, blocks=(1, 1, 2))
    net = DBAFNet(config)
    path = models.write_checkpoint(tmp_path / "b.pt", {"config": config.as_dict(), "model": net.state_dict()})
    assert models.load_model(path).config == config
