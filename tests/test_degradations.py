import numpy as np
import pytest

from napari_gldeblur import degradations as dg


@pytest.mark.parametrize("family", sorted(dg.KERNEL_FAMILIES))
def test_every_family_gives_a_normalised_non_negative_odd_kernel(family):
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = dg.KERNEL_FAMILIES[family](rng)
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.min() >= 0 and abs(float(k.sum()) - 1) < 1e-5


@pytest.mark.parametrize("length", [3, 15, 45])
def test_shake_kernel_size_follows_its_length(length):
    """The support of a shake spans about its length (at least half of it, at most the length + padding)."""
    rng = np.random.default_rng(1)
    for _ in range(10):
        k = dg.shake_kernel(rng, length)
        ys, xs = np.nonzero(k > 1e-6)
        extent = max(ys.max() - ys.min(), xs.max() - xs.min())
        assert length / 3 - 1 <= extent <= length + 2  # a curve or a jerk folds it, never into a dot
        assert k.shape[0] <= 2 * length + 8  # centred on its centre of mass, which may lie near one end


@pytest.mark.parametrize("family", ["shake", "composite", "mild"])
def test_kernels_are_centred_on_their_centre_of_mass(family):
    """Blurring must not shift the picture against its target: every kernel's centre of mass is its centre pixel
    (an unevenly exposed shake centred on its bounding box is off by up to a few pixels)."""
    from scipy import ndimage

    rng = np.random.default_rng(2)
    for _ in range(30):
        k = dg.KERNEL_FAMILIES[family](rng)
        centre = (k.shape[0] - 1) / 2
        np.testing.assert_allclose(ndimage.center_of_mass(k.astype(np.float64)), (centre, centre), atol=1e-3)


def test_splat_spreads_a_point_over_its_four_neighbours_and_drops_what_falls_off():
    k = dg.splat(np.array([[0.25, -0.5], [9.0, 0.0]]), np.array([1.0, 1.0]), 5)  # the second is off the grid
    assert k.sum() == pytest.approx(1.0)
    assert k[2, 1] == pytest.approx(0.375) and k[2, 2] == pytest.approx(0.375)
    assert k[3, 1] == pytest.approx(0.125) and k[3, 2] == pytest.approx(0.125)
    yy, xx = np.indices(k.shape) - 2
    assert ((k * yy).sum(), (k * xx).sum()) == pytest.approx((0.25, -0.5))  # centre of mass kept


def test_shake_kernels_are_fresh_and_reproducible():
    a = dg.random_shake(np.random.default_rng(5))
    b = dg.random_shake(np.random.default_rng(5))
    c = dg.random_shake(np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)


def test_compose_widens_the_blur():
    shake, disk = dg.shake_kernel(np.random.default_rng(0), 10), dg.defocus_kernel(3)
    k = dg.compose(shake, disk)
    assert k.shape[0] == shake.shape[0] + disk.shape[0] - 1 and abs(k.sum() - 1) < 1e-5


def test_linear_light_round_trip():
    x = np.linspace(0, 1, 30, dtype=np.float32).reshape(10, 1, 3)
    np.testing.assert_allclose(dg.to_srgb(dg.to_linear(x)), x, atol=1e-6)


def test_lifted_highlights_smear_and_stay_saturated():
    """A small white light on a dark background: lifted before the blur, its streak stays clipped at white
    over more pixels than the same blur of the unlifted light (RSBlur's saturation)."""
    img = np.full((41, 41, 3), 0.1, np.float32)
    img[19:22, 19:22] = 1.0
    k = dg.gaussian_kernel(2, 2, 0)
    lifted = dg.blur(dg.lift_highlights(dg.to_linear(img), np.random.default_rng(0), gain=(6, 6)), k)
    plain = dg.blur(dg.to_linear(img), k)
    assert (np.clip(lifted, 0, 1) >= 0.999).sum() > (plain >= 0.999).sum()


def test_sensor_noise_grows_with_signal():
    rng = np.random.default_rng(0)
    dark, bright = np.full((64, 64, 3), 0.05, np.float32), np.full((64, 64, 3), 0.6, np.float32)
    assert (dg.sensor_noise(bright, rng, 0.03, 0.001) - bright).std() > 2 * (dg.sensor_noise(dark, rng, 0.03, 0.001) - dark).std()


def test_degrade_pair_blurs_inside_its_padding():
    rng = np.random.default_rng(0)
    sharp = np.random.default_rng(1).random((80, 80, 3)).astype(np.float32)
    k = dg.gaussian_kernel(2, 2, 0)
    pad = k.shape[0] // 2 + 1
    blurry, target = dg.degrade_pair(sharp, k, rng, pad)
    assert blurry.shape == target.shape == (80 - 2 * pad,) * 2 + (3,)
    np.testing.assert_array_equal(target, sharp[pad:-pad, pad:-pad])
    assert np.abs(np.diff(blurry, axis=1)).mean() < 0.5 * np.abs(np.diff(target, axis=1)).mean()


def test_identity_pairs_are_often_exact():
    rng = np.random.default_rng(0)
    sharp = np.random.default_rng(1).random((20, 20, 3)).astype(np.float32)
    exact = sum(np.array_equal(*dg.degrade_pair(sharp, dg.identity_kernel(), rng, 1)) for _ in range(40))
    assert 10 <= exact <= 30  # half of identity pairs are clean, the others carry only noise / JPEG


def test_a_light_saturated_in_the_input_is_white_in_the_target():
    """Lifted highlights clip in the blurry input and in the clean target alike: the network is never taught to
    turn a white light grey."""
    light = np.full((40, 40, 3), 0.3, np.float32)
    light[12:28, 12:28] = 0.96  # near white: lifted above the clipping point half of the time
    saturated = 0
    for seed in range(40):
        blurry, target = dg.degrade_pair(light, dg.identity_kernel(), np.random.default_rng(seed), 2)
        if np.median(blurry[12:24, 12:24]) >= 0.99:
            saturated += 1
            assert target[12:24, 12:24].min() == 1.0
        else:
            assert np.array_equal(target, light[2:-2, 2:-2])
    assert saturated >= 5


def test_kept_grain_identity_pairs_are_always_exact():
    rng = np.random.default_rng(0)
    sharp = np.random.default_rng(1).random((20, 20, 3)).astype(np.float32)
    pairs = [dg.degrade_pair(sharp, dg.identity_kernel(), rng, 1, keep_grain=True) for _ in range(20)]
    assert all(np.array_equal(b, s) for b, s in pairs)
    assert sum(not np.allclose(s, sharp[1:-1, 1:-1], atol=1e-4) for _, s in pairs) >= 10  # grain in both


@pytest.mark.parametrize("family", ["mild", "shake"])
def test_kept_grain_pairs_share_their_noise(family):
    flat = np.full((80, 80, 3), 0.5, np.float32)  # a flat picture: blur changes nothing, only noise differs
    k = dg.KERNEL_FAMILIES[family](np.random.default_rng(3))
    pad = k.shape[0] // 2 + 1
    kept = [dg.degrade_pair(flat, k, np.random.default_rng(i), pad, keep_grain=True) for i in range(10)]
    clean = [dg.degrade_pair(flat, k, np.random.default_rng(i), pad) for i in range(10)]
    assert all(np.abs(b - s).max() < 1e-5 for b, s in kept)
    assert sum(np.abs(b - s).max() > 1e-3 for b, s in clean) >= 5  # the clean target lacks the input's noise


def test_random_kernel_follows_the_mix():
    rng = np.random.default_rng(0)
    names = [dg.random_kernel(rng, {"shake": 0.75, "identity": 0.25})[0] for _ in range(400)]
    assert 0.65 < names.count("shake") / 400 < 0.85


def test_estimate_kernel_recovers_a_motion_streak_from_a_few_noisy_pairs():
    """12 noisy 8-bit pairs of 96 px under one 17 px diagonal streak give the streak back within 0.3 in L1
    (of a kernel summing to 1); an off-diagonal streak is not what it finds."""
    from napari_gldeblur.synthesis import skimage_images

    truth = dg.line_kernel(17.0)
    rng = np.random.default_rng(0)
    pictures = skimage_images(("astronaut", "camera", "coffee"))
    pairs = []
    for i in range(12):
        im = pictures[i % 3]
        y, x = rng.integers(0, im.shape[0] - 96), rng.integers(0, im.shape[1] - 96)
        sharp = im[y:y + 96, x:x + 96]
        blurry = np.round(np.clip(dg.blur(sharp, truth) + rng.normal(0, 0.01, sharp.shape), 0, 1) * 255) / 255
        pairs.append((blurry.astype(np.float32), sharp))
    found = dg.estimate_kernel(pairs, size=truth.shape[0])
    assert found.shape == truth.shape and found.sum() == pytest.approx(1, abs=1e-5) and found.min() >= 0
    assert np.abs(found - truth).sum() < 0.3
    assert np.abs(found - truth[:, ::-1]).sum() > 1.0


def test_residual_noise_measures_the_noise_added_after_the_blur():
    rng = np.random.default_rng(1)
    sharp = rng.random((64, 64, 3)).astype(np.float32)
    k = dg.gaussian_kernel(1.5, 1.5, 0.0)
    pairs = [(dg.blur(sharp, k) + rng.normal(0, 0.02, sharp.shape).astype(np.float32), sharp)]
    assert dg.residual_noise(pairs, k) == pytest.approx(0.02, rel=0.1)
