import numpy as np
import pytest

from napari_gldeblur import evaluation as ev
from napari_gldeblur import synthesis


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    sharp = synthesis.procedural_image(rng, 96)
    return synthesis.blur_global(sharp, synthesis.gaussian_kernel(1.5, 1.5, 0.0)), sharp


@pytest.mark.parametrize("name", list(ev.BASELINES))
def test_baselines_are_deterministic_and_in_range(pair, name):
    fn = ev.BASELINES[name]
    a, b = fn(pair[0]), fn(pair[0])
    assert a.shape == pair[0].shape and a.dtype == np.float32
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, b)


def test_matched_psf_deconvolution_helps(pair):
    """With the true PSF (Gaussian, sigma 1.5) Richardson-Lucy must beat the blurry input."""
    blur, sharp = pair
    assert ev.psnr(ev.richardson_lucy(blur, 1.5, 20), sharp) > ev.psnr(blur, sharp) + 1


def test_wiener_filter_with_the_blur_kernel_undoes_a_motion_streak():
    from napari_gldeblur.degradations import blur, line_kernel

    sharp = synthesis.procedural_image(np.random.default_rng(1), 96)
    kernel = line_kernel(9.0)
    blurred = np.clip(blur(sharp, kernel), 0, 1)
    out = ev.wiener_deconvolve(blurred, kernel, 0.01)
    assert out.shape == sharp.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert ev.psnr(out, sharp) > ev.psnr(blurred, sharp) + 2
    assert ev.psnr(ev.wiener_deconvolve(blurred, np.rot90(kernel), 0.01), sharp) < ev.psnr(out, sharp) - 2


def test_evaluate_reports_input_and_output(pair):
    res = ev.evaluate(lambda x: x, [pair])
    assert res["n"] == 1 and res["input_psnr"] == res["output_psnr"]
    assert set(ev.evaluate(None, [pair])) == {"n", "input_psnr", "input_ssim"}


def test_psnr_gains_are_per_pair_and_signed(pair):
    blur, sharp = pair
    assert ev.psnr_gains(lambda x: x, [pair, pair]) == [0.0, 0.0]
    (better,) = ev.psnr_gains(lambda x: ev.richardson_lucy(x, 1.5, 20), [pair])  # the true PSF helps (test above)
    (worse,) = ev.psnr_gains(lambda x: np.clip(x + 0.1, 0, 1), [pair])
    assert better > 1 and worse < 0
