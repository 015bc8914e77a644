import numpy as np
import pytest
from scipy import ndimage

from napari_gldeblur import synthesis as syn


@pytest.fixture(scope="module")
def bank():
    return syn.kernel_bank(0)


def test_kernel_bank_composition_and_normalisation(bank):
    kinds = [k.kind for k in bank]
    assert (kinds.count("motion"), kinds.count("gaussian"), kinds.count("defocus")) == (32, 16, 8)
    for k in bank:
        assert k.array.dtype == np.float32 and k.array.min() >= 0
        assert abs(float(k.array.sum()) - 1) < 1e-5


def test_kernel_bank_reproducible_from_seed(bank):
    again = syn.kernel_bank(0)
    other = syn.kernel_bank(1)
    assert all(np.array_equal(a.array, b.array) for a, b in zip(bank, again))
    assert not all(np.array_equal(a.array, b.array) for a, b in zip(bank[:32], other[:32]))


def test_motion_kernels_extend_up_to_about_25px(bank):
    extents = []
    for k in bank[:32]:
        ys, xs = np.nonzero(k.array > 1e-4)
        extents.append(max(np.ptp(ys), np.ptp(xs)) if len(ys) else 0)
    assert max(extents) <= 27 and max(extents) >= 12


def test_every_bank_kernel_is_centred_on_its_centre_of_mass(bank):
    """A kernel off its centre shifts the blurred picture against its sharp target (degradations.rasterise)."""
    for k in bank:
        centre = (k.array.shape[0] - 1) / 2
        np.testing.assert_allclose(ndimage.center_of_mass(k.array.astype(np.float64)), (centre, centre), atol=1e-3)


def test_global_blur_reduces_detail_and_keeps_mean():
    rng = np.random.default_rng(0)
    img = rng.random((64, 64, 3)).astype(np.float32)
    out = syn.blur_global(img, syn.defocus_kernel(3.0))
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.abs(np.diff(out, axis=1)).mean() < 0.5 * np.abs(np.diff(img, axis=1)).mean()
    assert abs(out.mean() - img.mean()) < 0.01  # reflected borders: no dark frame


@pytest.mark.parametrize("y, x", [(10.0, 10.0), (7.3, 12.71), (4.5, 15.99), (0.25, 19.5)])
def test_window_is_a_bilinear_shift(y, x):
    """``window`` (the dynamic scenes' sub-frame translation) equals ndimage.shift(order=1) cut to the window."""
    img = np.random.default_rng(0).random((60, 60, 3)).astype(np.float32)
    moved = ndimage.shift(img, (10 - y, 10 - x, 0), order=1, mode="reflect")[10:40, 10:40]
    np.testing.assert_allclose(syn.window(img, y, x, 30), moved, atol=1e-6)


def test_dynamic_scene_blurs_objects_more_than_background():
    rng = np.random.default_rng(3)
    src = syn.procedural_image(rng, 256)
    others = [syn.procedural_image(rng, 256)]
    ratios = []
    for seed in range(4):
        r = np.random.default_rng(seed)
        blur, sharp, moving = syn.dynamic_scene(src, others, r, 128, objects=1, camera_px=1.0, return_motion=True)
        err = np.abs(blur - sharp).mean(-1)
        inside, outside = moving > 0.5, moving < 0.01
        assert inside.any() and outside.any()
        ratios.append(err[inside].mean() / (err[outside].mean() + 1e-6))
    assert np.median(ratios) > 2.0, ratios


def test_dynamic_scene_target_is_the_middle_of_the_exposure():
    """The sharp target is where the blurred picture's centre of mass is: a smooth blob carried by the camera's
    drift is blurred around the target's blob (an even count of sub-frames has no middle frame)."""
    size, margin = 64, 16
    yy, xx = np.mgrid[: size + 2 * margin, : size + 2 * margin] - (size + 2 * margin - 1) / 2
    blob = np.repeat(np.exp(-(yy**2 + xx**2) / (2 * 3.0**2))[..., None], 3, -1).astype(np.float32)
    for seed in range(20):
        blur, sharp = syn.dynamic_scene(blob, [], np.random.default_rng(seed), size, objects=0, camera_px=12.0)
        centres = [np.array(ndimage.center_of_mass(im[..., 0].astype(np.float64) ** syn.GAMMA)) for im in (blur, sharp)]
        np.testing.assert_allclose(centres[0], centres[1], atol=0.05)


def test_mild_pairs_are_much_less_blurred_than_the_bank():
    src = syn.procedural_image(np.random.default_rng(0), 200)

    def mean_psnr(kind):
        pairs = [syn.make_pair(kind, src, np.random.default_rng(k), 96, noise=0.0, jpeg_prob=0.0) for k in range(6)]
        return np.mean([10 * np.log10(1 / np.mean((b - s) ** 2)) for b, s in pairs])

    assert np.isfinite(mean_psnr("mild"))  # blurred, not an identity pair
    assert mean_psnr("mild") > mean_psnr("global") + 3
    k = syn.mild_kernel(np.random.default_rng(0))
    assert abs(k.sum() - 1) < 1e-5 and k.max() > 0.2  # a narrow kernel


def test_soften_removes_fine_detail_but_keeps_the_picture():
    src = syn.procedural_image(np.random.default_rng(0), 128)
    soft = syn.soften(src, np.random.default_rng(1))
    assert soft.shape == src.shape and soft.dtype == np.float32
    detail = lambda im: np.mean(ndimage.laplace(im.mean(-1)) ** 2)  # noqa: E731  (high-frequency energy)
    assert detail(soft) < 0.5 * detail(src)
    assert abs(soft.mean() - src.mean()) < 0.01


def test_recolour_changes_colours_and_tones_but_keeps_the_edges():
    src = np.zeros((32, 32, 3), np.float32)
    src[:, 16:] = (0.9, 0.5, 0.2)  # one orange edge
    outs = [syn.recolour(src, np.random.default_rng(seed)) for seed in range(8)]
    for out in outs:
        assert out.shape == src.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        assert np.all(out[:, :16] == 0) and np.ptp(out[:, 16:], axis=(0, 1)).max() == 0  # flat stays flat
    assert len({tuple(np.round(o[0, -1], 3)) for o in outs}) == 8  # every draw another colour


def test_shallow_focus_defocuses_the_background_and_keeps_the_subject_sharp():
    stripes = np.zeros((96, 96, 3), np.float32)
    stripes[:, ::2] = 1
    flat = np.full((96, 96, 3), 0.5, np.float32)
    rng = np.random.default_rng(2)
    out = syn.shallow_focus(flat, stripes, rng)  # a striped subject over a flat background
    assert out.shape == flat.shape and out.dtype == np.float32
    stripe = (out < 0.01).all(-1) | (out > 0.99).all(-1)  # the subject's stripes stay black and white in its middle
    assert 0.01 < stripe.mean() < 0.5 and abs(np.median(out) - 0.5) < 1e-3
    out = syn.shallow_focus(stripes, flat, rng)  # the stripes are now the background: defocused
    detail = lambda im: np.mean(ndimage.laplace(im.mean(-1)) ** 2)  # noqa: E731
    assert detail(out) < 0.05 * detail(stripes)


def test_shallow_focus_cuts_its_subject_from_the_most_detailed_window():
    corner = np.full((96, 96, 3), 0.5, np.float32)
    corner[64:, 64:] = np.indices((32, 32)).sum(0)[..., None] % 2  # detail only in one corner of the subject
    flat = np.full((96, 96, 3), 0.5, np.float32)
    detail = [np.mean([syn.fine_detail(syn.shallow_focus(flat, corner, np.random.default_rng(s), tries=t))
                       for s in range(12)]) for t in (1, 4)]
    assert detail[1] > 1.5 * detail[0] > 0
    assert syn.fine_detail(flat) == 0 and syn.fine_detail(corner) > 0.01


def test_make_pair_shapes_and_range():
    rng = np.random.default_rng(0)
    src = syn.procedural_image(rng, 200)
    for kind in ("global", "dynamic", "mixed", "mild"):
        blur, sharp = syn.make_pair(kind, src, np.random.default_rng(1), 64)
        assert blur.shape == sharp.shape == (64, 64, 3)
        assert blur.dtype == sharp.dtype == np.float32
        assert 0 <= blur.min() and blur.max() <= 1
    blur, sharp = syn.make_pair("sharp", src, np.random.default_rng(1), 64)
    assert np.array_equal(blur, sharp) and blur is not sharp  # identity pairs
    blur, sharp = syn.make_pair("soft", src, np.random.default_rng(1), 64)
    assert np.array_equal(blur, sharp) and blur is not sharp and sharp.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="unknown blur kind"):
        syn.make_pair("wobbly", src, rng, 64)


def test_iter_pairs_is_reproducible_and_writes_files(tmp_path):
    src = [syn.procedural_image(np.random.default_rng(0), 160)]
    a = list(syn.iter_pairs("mixed", src, 3, 48, seed=5))
    b = list(syn.iter_pairs("mixed", src, 3, 48, seed=5))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    n = syn.write_pairs(tmp_path, iter(a))
    assert n == 3
    assert sorted(p.name for p in (tmp_path / "blur").iterdir()) == sorted(p.name for p in (tmp_path / "sharp").iterdir())


def test_held_out_images_are_not_training_images():
    assert not set(syn.HELD_OUT) & set(syn.TRAIN_IMAGES)
    assert "cat" not in syn.TRAIN_IMAGES  # skimage's cat is chelsea, which is held out


def test_kernel_seed_and_augmentation():
    src = [syn.procedural_image(np.random.default_rng(0), 200)]
    a = list(syn.iter_pairs("global", src, 2, 48, seed=5, procedural=0.0, kernel_seed=1))
    b = list(syn.iter_pairs("global", src, 2, 48, seed=5, procedural=0.0))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))  # another kernel bank, other blur
    aug = list(syn.iter_pairs("global", src, 2, 48, seed=5, procedural=0.0, augment=True))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(aug, b))  # jittered sharp content
    j = syn.jitter_source(src[0], np.random.default_rng(0), 112)
    assert j.dtype == np.float32 and min(j.shape[:2]) >= 112 and 0 <= j.min() and j.max() <= 1


def test_dead_leaves_cover_the_picture_with_leaves_of_many_sizes():
    rng = np.random.default_rng(3)
    img = syn.dead_leaves_image(rng, 128)
    assert img.shape == (128, 128, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    flat = syn.dead_leaves_image(np.random.default_rng(3), 64, coverage=0)  # no leaves: the background alone
    assert np.ptp(flat.reshape(-1, 3), axis=0).max() == 0
    _, counts = np.unique(syn.to_uint8(img).reshape(-1, 3), axis=0, return_counts=True)
    assert counts.max() / counts.sum() < 0.1  # the background (or any one leaf) shows through only here and there
    assert np.array_equal(img, syn.dead_leaves_image(np.random.default_rng(3), 128))  # reproducible
    # edges at every scale: gradients in fine and in coarse versions of the picture
    for step in (1, 4):
        g = np.abs(np.diff(img[::step, ::step].mean(-1), axis=1))
        assert (g > 0.05).mean() > 0.02


def test_dead_leaves_take_colours_and_texture_from_sources():
    tex = np.zeros((200, 200, 3), np.float32)
    tex[..., 1] = 1  # pure green
    img = syn.dead_leaves_image(np.random.default_rng(0), 96, [tex])
    green = (img[..., 1] > 0.99) & (img[..., [0, 2]].max(-1) < 0.01)
    assert green.mean() > 0.5  # most colours are drawn from the sources; a few are uniform at random


def test_iter_pairs_dead_leaves_content():
    src = [syn.procedural_image(np.random.default_rng(0), 160)]
    dl = list(syn.iter_pairs("dynamic", src, 2, 48, seed=5, procedural=1.0, content="dead-leaves"))
    shapes = list(syn.iter_pairs("dynamic", src, 2, 48, seed=5, procedural=1.0))
    assert all(b.shape == s.shape == (48, 48, 3) for b, s in dl)
    assert not any(np.array_equal(x[1], y[1]) for x, y in zip(dl, shapes))
    with pytest.raises(ValueError, match="unknown content"):
        next(syn.iter_pairs("global", src, 1, 48, content="clouds"))
