import os

import numpy as np
import pytest
import torch
from skimage.filters import gaussian

from napari_gldeblur import Deblurrer, DeblurResult, devices, inference, models, strength, tiling
from napari_gldeblur.evaluation import psnr
from napari_gldeblur.inference import (
    Cancelled,
    Progress,
    image_layout,
    value_range,
)
from napari_gldeblur.network import DBAFNet, NetConfig, build
from napari_gldeblur.tiling import choose_tile, ramp, tile_starts, tile_weights

TINY = NetConfig(width=4, blocks=1)
RNG = np.random.default_rng(0)


def tiny_net(variant: str = "DBAF", seed: int = 0) -> DBAFNet:
    torch.manual_seed(seed)
    return build(TINY, variant).eval()


def identity_net() -> DBAFNet:
    """A network whose output is exactly its input: the reconstruction's last conv is zero."""
    net = tiny_net()
    last = net.reconstruction.convs[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return net


@pytest.fixture(scope="module")
def tiny():
    return Deblurrer(tiny_net(), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def ident():
    return Deblurrer(identity_net(), device="cpu", precision="fp32")


def smooth_image(h: int, w: int, c: int = 3) -> np.ndarray:
    """A natural-ish float image in [0, 1]: gradients, a disc and a little noise."""
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    base = [0.5 + 0.4 * np.sin(6 * xx + k) * np.cos(4 * yy - k) for k in range(c)]
    img = np.stack(base, -1) + ((yy - 0.3) ** 2 + (xx - 0.4) ** 2 < 0.05)[..., None] * 0.3
    return np.clip(img + RNG.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)


def as_dtype(img: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return (img * np.iinfo(dtype).max).round().astype(dtype)
    if dtype.kind == "i":
        return (img * 2000 - 1000).round().astype(dtype)
    return img.astype(dtype)


# --- shapes, dtypes, layouts ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape, stack, hw", [
    ((20, 26), (), (20, 26)),
    ((20, 26, 3), (), (20, 26)),
    ((20, 26, 4), (), (20, 26)),
    ((3, 20, 26), (3,), (20, 26)),
    ((2, 20, 26, 3), (2,), (20, 26)),
    ((2, 20, 26, 4), (2,), (20, 26)),
    ((2, 2, 20, 26), (2, 2), (20, 26)),
])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int16])
def test_output_matches_input_shape_and_dtype(tiny, shape, stack, hw, dtype):
    img = as_dtype(RNG.random(shape), dtype)
    r = tiny(img, strength=1)
    assert isinstance(r, DeblurResult)
    assert r.image.shape == img.shape and r.image.dtype == img.dtype
    for m in (r.local_features, r.global_features, r.attention):
        assert m.shape == stack + hw and m.dtype == np.float32
        assert 0 <= m.min() and m.max() <= 1
    assert r.local_features.max() == pytest.approx(1.0)  # normalised by its maximum


def test_image_layout_rules():
    assert image_layout((5, 6)) == inference.Layout((), 5, 6, 1)
    assert image_layout((5, 6, 3)).channels == 3
    assert image_layout((5, 6, 3), rgb=False) == inference.Layout((5,), 6, 3, 1)  # napari says it is a stack
    assert image_layout((2, 5, 6, 4)) == inference.Layout((2,), 5, 6, 4)
    assert image_layout((2, 3, 5, 6)).stack == (2, 3)


def test_rgba_alpha_passes_through_untouched(tiny):
    img = (RNG.random((24, 30, 4)) * 255).astype(np.uint8)
    r = tiny(img, strength=1)
    np.testing.assert_array_equal(r.image[..., 3], img[..., 3])
    rgb = tiny(np.ascontiguousarray(img[..., :3]), strength=1)
    np.testing.assert_array_equal(r.image[..., :3], rgb.image)  # alpha never reaches the network


def test_uint16_keeps_full_range(ident, tiny):
    img = as_dtype(smooth_image(24, 32), np.uint16)
    img[0, 0] = [0, 65535, 40000]
    np.testing.assert_array_equal(ident(img, strength=1).image, img)  # exact: no 8-bit step anywhere
    out = tiny(img, strength=1).image
    assert out.dtype == np.uint16 and out.max() > 255
    assert len(np.unique(out)) > 1000  # 16-bit precision, not 256 levels


@pytest.mark.parametrize("lo, hi", [(-5.0, 300.0), (0.0, 1.0), (1000.0, 1000.5)])
def test_float_values_restored_to_their_range(ident, lo, hi):
    img = (smooth_image(20, 24) * (hi - lo) + lo).astype(np.float32)
    img[0, 0, 0], img[-1, -1, -1] = lo, hi
    out = ident(img, strength=1).image
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, img, rtol=0, atol=(hi - lo) * 1e-5)
    assert out.min() >= lo and out.max() <= hi


def test_float_in_unit_range_is_not_stretched():
    assert value_range(np.array([[0.2, 0.4]], np.float32)) == (0.0, 1.0)
    assert value_range(np.array([[0.2, 3.0]], np.float32)) == pytest.approx((0.2, 3.0))
    assert value_range(np.array([[0, 40000]], np.uint16)) == (0.0, 65535.0)
    assert value_range(np.array([[0, 4095]], np.uint16)) == (0.0, 4095.0)  # 12-bit data
    assert value_range(np.array([[0, 4096]], np.uint16)) == (0.0, 16383.0)
    assert value_range(np.zeros((2, 2), np.uint16)) == (0.0, 255.0)


def test_constant_image_stays_constant(ident):
    img = np.full((10, 12), 7.5, np.float64)
    np.testing.assert_array_equal(ident(img, strength=1).image, img)


def test_gray_is_the_channel_mean_of_the_rgb_result(tiny):
    gray = smooth_image(24, 28, 1)[..., 0]
    r_gray = tiny(gray, features=False, strength=1).image
    r_rgb = tiny(np.repeat(gray[..., None], 3, -1), features=False, strength=1).image
    np.testing.assert_allclose(r_gray, r_rgb.mean(-1), atol=1e-6)


def test_identity_for_every_integer_layout(ident):
    for shape in [(16, 18), (16, 18, 3), (2, 16, 18), (2, 16, 18, 4)]:
        img = (RNG.random(shape) * 255).astype(np.uint8)
        np.testing.assert_array_equal(ident(img, strength=1).image, img)


@pytest.mark.parametrize("variant, has_global, has_attention", [("LB", False, False), ("DB", True, False)])
def test_variants_give_none_for_missing_maps(variant, has_global, has_attention):
    r = Deblurrer(tiny_net(variant), device="cpu", precision="fp32")(RNG.random((16, 20, 3)).astype(np.float32), strength=1)
    assert r.local_features.shape == (16, 20)
    assert (r.global_features is not None) == has_global
    assert (r.attention is not None) == has_attention


def test_all_channels_keeps_every_channel():
    d = Deblurrer(tiny_net(), device="cpu", precision="fp32", all_channels=True)
    r = d(RNG.random((2, 16, 20, 3)).astype(np.float32), strength=1)
    assert r.local_features.shape == (2, 16, 20, TINY.width)
    assert r.global_features.shape == (2, 16, 20, TINY.width)
    assert r.attention.shape == (2, 16, 20)
    assert r.local_features.min() < 0 or r.local_features.max() > 1  # raw values, not normalised norms


def test_features_can_be_skipped(tiny):
    r = tiny(RNG.random((16, 20, 3)).astype(np.float32), features=False, strength=1)
    assert r.local_features is None and r.global_features is None and r.attention is None


def test_features_match_the_network(tiny):
    img = smooth_image(20, 24)
    r = tiny(img, strength=1)
    with torch.no_grad():
        out = tiny.net(torch.from_numpy(img).permute(2, 0, 1)[None])
    norm = torch.linalg.vector_norm(out.local_features[0], dim=0).numpy()
    np.testing.assert_allclose(r.local_features, norm / norm.max(), atol=1e-5)
    np.testing.assert_allclose(r.attention, out.attention[0].mean(0).numpy(), atol=1e-5)


# --- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("image, message", [
    (np.array([[0.0, np.nan], [1.0, 0.5]]), "NaN or infinite"),
    (np.array([[0.0, np.inf], [1.0, 0.5]], np.float32), "NaN or infinite"),
    (np.zeros((0, 5)), "empty"),
    (np.zeros((1, 1)), "too small"),
    (np.zeros((1, 30, 3)), "too small"),
    (np.zeros(5), r"expected \(Y, X\)"),
    (np.zeros((2, 2, 2, 2, 5, 5)), "at most 3 leading stack axes"),
    (np.zeros((2, 2, 2, 2, 4, 4, 3)), "at most 3 leading stack axes"),
    (np.zeros((4, 4), bool), "bool"),
    (np.zeros((4, 4), complex), "complex"),
])
def test_bad_images_raise_one_line_value_errors(tiny, image, message):
    with pytest.raises(ValueError, match=message) as info:
        tiny(image, strength=1)
    assert "\n" not in str(info.value)


def test_rgb_flag_needs_a_colour_axis(tiny):
    with pytest.raises(ValueError, match="last axis of 3 or 4"):
        tiny(np.zeros((8, 8, 5)), rgb=True, strength=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "quantum"}, "unknown device"),
    ({"precision": "int4"}, "unknown precision"),
    ({"tile": 40, "overlap": 32}, "too small"),
    ({"overlap": -1}, "overlap"),
])
def test_bad_settings_raise_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Deblurrer(tiny_net(), **kwargs)


def test_tiles_overlap_by_the_receptive_radius_by_default():
    from napari_gldeblur.network import receptive_radius

    net = tiny_net()
    assert Deblurrer(net, device="cpu").overlap == receptive_radius(net.config)
    assert Deblurrer("lite", device="cpu").overlap == 68  # blocks (1, 1, 6)
    assert Deblurrer("lite", device="cpu", tile=128).overlap == 42  # a third of a small tile the user chose
    with pytest.raises(ValueError, match="twice the 68 px overlap"):
        Deblurrer("lite", device="cpu", tile=128, overlap=68)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(20, 26, 3), (20, 26), (20, 26, 4)])
def test_strength_zero_gives_the_input_back(tiny, dtype, shape):
    img = as_dtype(smooth_image(20, 26, shape[2] if len(shape) == 3 else 1).reshape(shape), dtype)
    out = tiny(img, strength=0.0).image
    assert out.dtype == img.dtype
    if np.dtype(dtype).kind == "f":  # gray: the mean of three equal channels, exact up to float rounding
        np.testing.assert_allclose(out, img, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(out, img)
    assert not np.array_equal(tiny(img, strength=1).image, img)  # the (random) network does change it


def test_strength_blends_input_and_full_output(tiny):
    img = smooth_image(24, 28)
    full = tiny(img, strength=1).image
    half = tiny(img, strength=0.5).image
    inside = (full > 0) & (full < 1)  # where the network's raw output was not clipped
    assert inside.mean() > 0.9
    np.testing.assert_allclose(half[inside], (0.5 * img + 0.5 * full)[inside], atol=1e-5)
    r = tiny(img, strength=0.5, features=True)
    np.testing.assert_array_equal(r.attention, tiny(img, strength=1).attention)  # the maps do not depend on strength


def frame_8bit(img: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) float image as the (3, H, W) 8-bit-valued frame the Deblurrer hands to auto strength."""
    return torch.from_numpy(np.round(img * 255) / 255).float().permute(2, 0, 1)


def test_fine_detail_measures_what_blur_removes():
    flat = torch.full((3, 16, 16), 0.5)
    assert inference.fine_detail(flat) == 0.0
    x = frame_8bit(np.clip(smooth_image(64, 64) + RNG.normal(0, 0.05, (64, 64, 3)), 0, 1))
    blurred = frame_8bit(gaussian(x.permute(1, 2, 0).numpy(), sigma=1.5, channel_axis=-1))
    assert 0 < inference.fine_detail(blurred) < inference.fine_detail(x) / 2
    half = frame_8bit(x.permute(1, 2, 0).numpy() * 0.5)  # lower contrast, same picture: about half the detail
    assert inference.fine_detail(half) == pytest.approx(inference.fine_detail(x) / 2, rel=0.05)


def test_change_ratio_is_the_mean_8bit_change_over_the_detail():
    x = frame_8bit(0.2 + 0.6 * smooth_image(32, 32))
    assert inference.change_ratio(x, x) == 0.0
    assert inference.change_ratio(x, x + 0.3 / 255) == 0.0  # rounds back to the input
    assert inference.change_ratio(x, x + 3 / 255) == pytest.approx(3 / inference.fine_detail(x))
    assert inference.change_ratio(x, x - 3 / 255) == pytest.approx(3 / inference.fine_detail(x))


def test_the_smoothed_ratio_discounts_removed_grain_but_not_a_restored_edge():
    x = frame_8bit(0.2 + 0.6 * smooth_image(32, 32))
    grain = torch.from_numpy(RNG.choice([-4.0, 4.0], (32, 32))).float()[None] / 255  # pixel-level, as denoising removes
    edge = torch.full((1, 32, 32), -4 / 255)
    edge[:, :, 16:] = 4 / 255  # coherent over many pixels, as sharpening an edge moves it
    assert inference.change_ratio(x, x + grain) == pytest.approx(inference.change_ratio(x, x + edge))
    assert strength.smoothed_change_ratio(x, x + grain) < strength.smoothed_change_ratio(x, x + edge) / 3
    assert strength.smoothed_change_ratio(x, x) == 0.0


def test_auto_strength_from_the_change_against_the_detail():
    x = frame_8bit(0.2 + 0.6 * smooth_image(32, 32))
    after = x + 2 / 255
    r = inference.change_ratio(x, after)
    assert inference.auto_strength(x, x) == 0.0  # no change: leave it alone
    assert inference.auto_strength(x, after, levels=(r + 0.1, r + 0.2)) == 0.0
    assert inference.auto_strength(x, after, levels=(r - 0.1, r + 0.1)) == 0.5
    assert inference.auto_strength(x, after, levels=(r - 0.2, r - 0.1)) == 1.0
    # the same change of 4 grey levels: all of it on a smooth frame, none on one with much fine detail
    smooth = frame_8bit(np.full((32, 32, 3), 0.5) + np.linspace(0, 0.2, 32)[:, None, None])
    busy = frame_8bit(RNG.uniform(0.2, 0.8, (32, 32, 3)))
    assert inference.auto_strength(smooth, smooth + 4 / 255) == 1.0
    assert inference.auto_strength(busy, busy + 4 / 255) == 0.0
    s = strength.smoothed_change_ratio(x, after)  # a gate on the other measure compares that one
    assert inference.auto_strength(x, after, levels=(s - 0.2, s - 0.1), measure="smoothed change / detail") == 1.0
    assert inference.auto_strength(x, after, levels=(s + 0.1, s + 0.2), measure="smoothed change / detail") == 0.0


def test_auto_strength_is_chosen_per_frame(tiny):
    stack = np.stack([smooth_image(20, 24), smooth_image(20, 24)[::-1]])
    r = tiny(stack, strength="auto")
    assert len(r.strengths) == 2 and set(r.strengths) <= {0.0, 0.5, 1.0}
    for k, s in enumerate(r.strengths):
        np.testing.assert_allclose(r.image[k], tiny(stack[k], strength=s).image, atol=1e-6)
    assert tiny(stack[0], strength=1).strengths == (1.0,)
    note = inference.strength_note("auto", r)  # what the widget and the CLI print
    assert note.startswith("auto strength ") and all(f"{s:g}" in note for s in r.strengths)
    assert inference.strength_note(0.5, r) == "strength 0.50"


def test_auto_strength_uses_the_gate_tuned_for_the_model(tmp_path, make_checkpoint):
    image = smooth_image(20, 24)
    path = make_checkpoint(tmp_path / "t.pt")
    ratio = inference.change_ratio(frame_8bit(image), frame_8bit(Deblurrer(path, device="cpu", precision="fp32")(
        image, features=False, strength=1).image))
    assert ratio > 0
    for gate, expected in (((ratio + 1, ratio + 2), 0.0), ((ratio / 2, ratio * 2), 0.5), ((0, ratio / 2), 1.0)):
        ckpt = models.read_checkpoint(path) | {"auto_strength": list(gate)}
        tuned = Deblurrer(models.write_checkpoint(tmp_path / f"{expected}.pt", ckpt), device="cpu", precision="fp32")
        assert tuned.auto_levels == gate
        assert tuned(image, strength="auto", features=False).strengths == (expected,)
        assert tuned(image, features=False).strengths == (expected,)  # auto is the default
    assert Deblurrer(path, device="cpu").auto_levels == inference.AUTO_STRENGTH_LEVELS  # no gate: the bundled one


def test_a_gate_on_the_smoothed_measure_is_used_for_its_model(tmp_path, make_checkpoint):
    image = smooth_image(20, 24)
    path = make_checkpoint(tmp_path / "t.pt")
    out = Deblurrer(path, device="cpu", precision="fp32")(image, features=False, strength=1).image
    ratio, smoothed = (f(frame_8bit(image), frame_8bit(out)) for f in (inference.change_ratio,
                                                                       strength.smoothed_change_ratio))
    gate = (min(ratio, smoothed), max(ratio, smoothed))  # one measure at each end: strength 0 on one, 1 on the other
    assert gate[0] < gate[1]
    ckpt = models.read_checkpoint(path) | {"auto_strength": list(gate)}
    on_ratio = Deblurrer(models.write_checkpoint(tmp_path / "r.pt", ckpt), device="cpu", precision="fp32")
    ckpt["auto_strength_measure"] = "smoothed change / detail"
    on_smoothed = Deblurrer(models.write_checkpoint(tmp_path / "s.pt", ckpt), device="cpu", precision="fp32")
    assert on_ratio.auto_measure == "change / detail" and on_smoothed.auto_measure == "smoothed change / detail"
    expected = {m: 0.0 if v <= gate[0] else 0.5 if v < gate[1] else 1.0
                for m, v in (("change / detail", ratio), ("smoothed change / detail", smoothed))}
    assert on_ratio(image, features=False).strengths == (expected["change / detail"],)
    assert on_smoothed(image, features=False).strengths == (expected["smoothed change / detail"],)
    assert expected["change / detail"] != expected["smoothed change / detail"]


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "strong"])
def test_strength_outside_0_1_is_a_value_error(tiny, strength):
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        tiny(smooth_image(8, 8), strength=strength)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA"):
        Deblurrer(tiny_net(), device="cuda")


def test_checkpoint_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        Deblurrer(str(bad))


# --- tiling ---------------------------------------------------------------------------------------------------
def test_tiled_output_matches_whole_image():
    net = tiny_net()
    img = (smooth_image(150, 200) * 255).round().astype(np.uint8)
    whole = Deblurrer(net, device="cpu", precision="fp32")(img, strength=1)
    tiled = Deblurrer(net, device="cpu", precision="fp32", tile=96, overlap=32)(img, strength=1)
    assert whole.tile is None and tiled.tile == (96, 96)
    assert psnr(tiled.image / 255.0, whole.image / 255.0) >= 45
    for name in ("local_features", "global_features", "attention"):
        assert psnr(getattr(tiled, name), getattr(whole, name)) >= 45, name


def test_float_tiles_blend_without_seams():
    net = tiny_net(seed=3)
    img = smooth_image(130, 170)
    whole = Deblurrer(net, device="cpu", precision="fp32")(img, features=False, strength=1).image
    tiled = Deblurrer(net, device="cpu", precision="fp32", tile=64, overlap=24)(img, features=False, strength=1).image
    assert psnr(tiled, whole) >= 45


def test_tile_starts_cover_with_overlap():
    for length, tile, overlap in [(100, 40, 8), (97, 32, 10), (64, 64, 8), (50, 64, 8), (1000, 256, 32)]:
        starts = tile_starts(length, tile, overlap)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + min(tile, length)] = True
        assert covered.all() and starts[0] == 0
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # neighbours share >= overlap


def test_ramps_sum_to_one_and_weights_are_positive():
    for n in (1, 7, 32):
        np.testing.assert_allclose(ramp(n) + ramp(n)[::-1], 1, atol=1e-6)
    ys, xs = tile_starts(100, 40, 10), tile_starts(130, 40, 10)
    total = np.zeros((100, 130), np.float32)
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            total[y:y + 40, x:x + 40] += tile_weights(ys, xs, 40, 40, iy, ix).numpy()
    assert total.min() > 0.5


def test_progress_counts_every_tile_of_every_frame():
    d = Deblurrer(tiny_net(), device="cpu", precision="fp32", tile=64, overlap=16)
    per_frame = len(tile_starts(100, 64, 16)) * len(tile_starts(150, 64, 16))
    calls = []
    d(RNG.random((3, 100, 150)).astype(np.float32), progress=lambda done, total: calls.append((done, total)), strength=1)
    assert calls == [(i + 1, 3 * per_frame) for i in range(3 * per_frame)]


def test_steps_generator_yields_progress_then_result():
    d = Deblurrer(tiny_net(), device="cpu", precision="fp32", tile=64, overlap=16)
    gen = d.steps(RNG.random((80, 100, 3)).astype(np.float32), strength=1)
    items = list(gen)
    assert all(isinstance(p, Progress) for p in items[:-1]) and len(items) == 5
    assert isinstance(items[-1], DeblurResult) and items[-1].image.shape == (80, 100, 3)


def test_cancel_stops_between_tiles():
    d = Deblurrer(tiny_net(), device="cpu", precision="fp32", tile=64, overlap=16)
    calls = []
    with pytest.raises(Cancelled):
        d(RNG.random((2, 100, 150)).astype(np.float32), progress=lambda *a: calls.append(a),
          cancel=lambda: len(calls) >= 2, strength=1)
    assert len(calls) == 2


def tiles_needed(h: int, w: int, tile: tuple[int, int], overlap: int = 32) -> int:
    return len(tile_starts(h + (-h % 4), tile[0], overlap)) * len(tile_starts(w + (-w % 4), tile[1], overlap))


def test_choose_tile_fits_the_budget_without_wasting_work():
    assert choose_tile(100, 100, 100, 10**6) is None  # fits whole
    budget = 200 << 20
    th, tw = choose_tile(4000, 6000, 768, budget)
    assert th % 4 == 0 and tw % 4 == 0 and th * tw * 768 <= budget
    assert tiles_needed(4000, 6000, (th, tw)) * th * tw <= 1.2 * 4000 * 6000  # overlaps cost < 20% extra
    th, tw = choose_tile(100, 50000, 768, budget)
    assert th == 100 and tw * th * 768 <= budget  # thin strips get long tiles
    assert choose_tile(720, 1280, 768, 1 << 40, max_area=600_000) in ((720, 656), (376, 1280))  # two halves


def test_cpu_tiles_keep_feature_maps_under_the_mmap_threshold():
    area = inference.speed_tile_area(16)
    assert area * 16 * 4 <= 32 << 20
    th, tw = choose_tile(720, 1280, inference.bytes_per_pixel(16), 1 << 40, 32, area)
    assert th * tw <= area and tiles_needed(720, 1280, (th, tw)) == 2


def test_auto_tiles_from_a_small_memory_budget(monkeypatch):
    net = tiny_net()
    img = smooth_image(160, 240)
    whole = Deblurrer(net, device="cpu", precision="fp32")(img, features=False, strength=1)
    budget_px = 96 * 96
    monkeypatch.setattr(tiling, "available_memory",
                        lambda: int(budget_px * tiling.bytes_per_pixel(TINY.width) / tiling.MEMORY_FRACTION))
    calls = []
    tiled = Deblurrer(net, device="cpu", precision="fp32")(img, features=False, progress=lambda *a: calls.append(a), strength=1)
    assert tiled.tile is not None and tiled.tile[0] * tiled.tile[1] <= budget_px
    assert calls[-1] == (tiles_needed(160, 240, tiled.tile), tiles_needed(160, 240, tiled.tile)) and len(calls) > 1
    assert psnr(tiled.image, whole.image) >= 45


def test_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    d = Deblurrer(tiny_net(), device="cpu", precision="fp32")
    real = d._forward

    def picky(x):
        if x.shape[-2] * x.shape[-1] > 100 * 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(x)

    monkeypatch.setattr(d, "_forward", picky)
    img = smooth_image(150, 300)
    calls = []
    r = d(img, progress=lambda *a: calls.append(a), strength=1)
    assert r.tile is not None and r.tile[0] * r.tile[1] <= 100 * 100
    assert calls[-1][0] == calls[-1][1]  # the total was updated to the smaller tiles
    reference = Deblurrer(tiny_net(), device="cpu", precision="fp32", tile=max(r.tile), overlap=d.overlap)(img, strength=1)
    np.testing.assert_allclose(r.image, reference.image, atol=1e-6)


def test_other_errors_are_not_retried(monkeypatch):
    d = Deblurrer(tiny_net(), device="cpu", precision="fp32")
    monkeypatch.setattr(d, "_forward", lambda x: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        d(smooth_image(20, 20), strength=1)


# --- models, devices, precision ---------------------------------------------------------------------------
def photo(h: int = 200, w: int = 264) -> np.ndarray:
    """A uint8 crop of scikit-image's astronaut: real texture for comparing devices."""
    from skimage import data

    return data.astronaut()[100 : 100 + h, 120 : 120 + w]


@pytest.mark.cuda
def test_cuda_fp32_matches_cpu_on_image_and_features():
    img = photo()
    gpu = Deblurrer("lite", device="cuda", precision="fp32")(img, features=True)
    cpu = Deblurrer("lite", device="cpu", precision="fp32")(img, features=True)
    assert (gpu.image.shape, gpu.image.dtype) == (img.shape, img.dtype)
    assert psnr(gpu.image / 255.0, cpu.image / 255.0) >= 45
    for name in ("local_features", "global_features", "attention"):
        a, b = getattr(gpu, name), getattr(cpu, name)
        assert a.shape == b.shape and psnr(a, b) >= 45, name


@pytest.mark.cuda
def test_cuda_auto_precision_is_half_and_close_to_fp32():
    d = Deblurrer("lite", device="cuda")
    assert d.precision in ("bf16", "fp16")
    img = photo()
    assert psnr(d(img).image / 255.0, Deblurrer("lite", device="cpu", precision="fp32")(img).image / 255.0) >= 40


@pytest.mark.cuda
def test_cuda_tiles_follow_free_gpu_memory(monkeypatch):
    net = tiny_net()
    img = smooth_image(160, 240)
    whole = Deblurrer(net, device="cuda", precision="fp32")(img, features=False)
    assert whole.tile is None  # a small frame fits the real free memory
    budget_px = 96 * 96
    free = int(budget_px * inference.bytes_per_pixel(TINY.width) / 0.7)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 8 * free))
    tiled = Deblurrer(net, device="cuda", precision="fp32")(img, features=False)
    assert tiled.tile is not None and tiled.tile[0] * tiled.tile[1] <= budget_px
    assert psnr(tiled.image, whole.image) >= 45


@pytest.mark.cuda
def test_cuda_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    d = Deblurrer(tiny_net(), device="cuda", precision="fp32")
    real, freed = d._forward, []

    def picky(x):
        if x.shape[-2] * x.shape[-1] > 100 * 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(x)

    monkeypatch.setattr(d, "_forward", picky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(True))
    r = d(smooth_image(150, 300))
    assert r.tile is not None and r.tile[0] * r.tile[1] <= 100 * 100 and freed


@pytest.mark.cuda
@pytest.mark.parametrize("make", [
    lambda: as_dtype(np.stack([smooth_image(48, 40, 1)[..., 0]] * 2), np.uint16),  # a 16-bit gray stack
    lambda: smooth_image(48, 40, 1)[..., 0],  # float32 gray
    lambda: as_dtype(smooth_image(48, 40, 4), np.uint8),  # RGBA
], ids=["uint16-stack", "float32-gray", "uint8-rgba"])
def test_cuda_keeps_layout_and_dtype(make):
    img = make()
    gpu = Deblurrer(tiny_net(), device="cuda", precision="fp32")(img)
    cpu = Deblurrer(tiny_net(), device="cpu", precision="fp32")(img)
    assert (gpu.image.shape, gpu.image.dtype) == (cpu.image.shape, cpu.image.dtype) == (img.shape, img.dtype)
    top = float(np.iinfo(img.dtype).max) if img.dtype.kind == "u" else 1.0
    assert psnr(gpu.image / top, cpu.image / top) >= 45


def test_callers_network_is_not_modified():
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    Deblurrer(net, device="cpu")(smooth_image(16, 16), strength=1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.local_branch.head[0].weight.is_contiguous()  # not switched to channels_last


def test_checkpoint_path_model(tiny_checkpoint):
    d = Deblurrer(str(tiny_checkpoint), device="cpu", precision="fp32")
    assert d.net.config == TINY
    assert d(smooth_image(16, 16), strength=1).image.shape == (16, 16, 3)


def test_paper_model_is_paper_size():
    d = Deblurrer("paper", device="cpu", precision="fp32")
    assert (d.net.config.width, d.net.config.blocks) == (64, 6)


def test_auto_device_is_cpu_without_accelerators():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert str(inference.pick_device("auto")) in ("cpu", "mps")


def test_fp32_request_disables_autocast(tiny):
    assert tiny.dtype is None and tiny.precision == "fp32"


def test_bf16_is_not_trusted_from_the_flag_alone(monkeypatch):
    monkeypatch.setattr(devices, "_BF16_DECISIONS", {})
    monkeypatch.setattr(devices, "cpu_bf16_supported", lambda: False)
    assert devices.pick_precision(tiny_net(), torch.device("cpu"), "auto") is None
    monkeypatch.setattr(devices, "cpu_bf16_supported", lambda: True)
    monkeypatch.setattr(devices, "BF16_MIN_SPEEDUP", 1e9)  # bf16 can never be fast enough
    assert devices.pick_precision(tiny_net(), torch.device("cpu"), "auto") is None
    monkeypatch.setattr(devices, "_BF16_DECISIONS", {})
    monkeypatch.setattr(devices, "BF16_MIN_PSNR", 1e9)  # bf16 can never be accurate enough
    monkeypatch.setattr(devices, "BF16_MIN_SPEEDUP", 0.0)
    assert devices.pick_precision(tiny_net(), torch.device("cpu"), "auto") is None


def test_bf16_decision_is_cached(monkeypatch):
    monkeypatch.setattr(devices, "_BF16_DECISIONS", {})
    net = tiny_net()
    first = devices.cpu_bf16_pays_off(net)
    monkeypatch.setattr(devices, "_probe_image", lambda size: pytest.fail("measured twice"))
    assert devices.cpu_bf16_pays_off(net) is first


@pytest.mark.skipif(not inference.cpu_bf16_supported(), reason="no bf16 on this CPU")
def test_bf16_output_is_close_to_fp32():
    net = tiny_net()
    img = smooth_image(40, 48)
    a = Deblurrer(net, device="cpu", precision="fp32")(img, strength=1).image
    b = Deblurrer(net, device="cpu", precision="bf16")(img, strength=1).image
    assert b.dtype == np.float32 and psnr(a, b) >= 40


@pytest.mark.torch_threads
def test_use_all_cores_raises_but_never_lowers_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        n = inference.use_all_cores()
        assert 1 <= n <= (os.cpu_count() or 1) and n == torch.get_num_threads()
        torch.set_num_threads(n + 1)
        assert inference.use_all_cores() == n + 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_12_bit_data_deblurs_as_its_8_bit_copy():
    """A 0-4095 uint16 picture is mapped by its 12 bits, not by 65535: at strength 1 the bundled model's gain on it
    is within 0.3 dB of the gain on the same picture as uint8, and auto strength opens on it (before, at 1/16 of
    the range, auto strength kept 0). Auto's level itself may differ between the two copies: the picture sits near
    a gate threshold, and the finer input moves the network's change a little."""
    from skimage import data

    sharp = data.camera()[128:384, 128:384].astype(np.float64) / 255
    blurred = gaussian(sharp, 2.0)
    d = Deblurrer("lite", device="cpu", precision="fp32")
    gains = []
    for top, dtype in ((255, np.uint8), (4095, np.uint16)):
        x = np.round(blurred * top).astype(dtype)
        out = d(x, strength=1.0).image
        assert out.dtype == dtype and out.max() <= top
        gains.append(psnr(out / top, sharp) - psnr(x / top, sharp))
    assert abs(gains[0] - gains[1]) <= 0.3, gains
    assert min(d(x, strength="auto").strengths) > 0  # x: the 12-bit copy, the loop's last


# --- big data: 5-D stacks, lazy input, streamed output, provenance -----------------------------------------
def test_a_5d_tczyx_stack_is_deblurred_frame_by_frame(tiny):
    """(T, C, Z, Y, X) with channel axis 1: every (t, c, z) plane equals that plane deblurred alone."""
    stack = np.random.default_rng(5).random((2, 2, 2, 12, 16)).astype(np.float32)
    r = tiny(stack, channel_axis=1, strength=1.0)
    assert r.image.shape == stack.shape and r.local_features.shape == stack.shape
    np.testing.assert_allclose(r.image[1, 0, 1], tiny(stack[1, 0, 1], strength=1.0, features=False).image, atol=1e-6)


def test_dask_input_is_read_lazily_and_matches_numpy(tiny):
    """A dask stack gives the numpy result; only frames are computed (the range from chunk extrema)."""
    da = pytest.importorskip("dask.array")
    stack = np.random.default_rng(6).integers(0, 4096, (4, 12, 16), dtype=np.uint16)
    lazy = da.from_array(stack, chunks=(1, 12, 16))
    np.testing.assert_array_equal(tiny(lazy, features=False, strength=1.0).image,
                                  tiny(stack, features=False, strength=1.0).image)


def test_out_receives_frames_and_a_trailing_channel_axis_goes_back_in_place(tiny):
    """``out=`` gets every frame (the result's image is ``out``), also through a moved trailing channel axis."""
    image = np.random.default_rng(7).random((3, 12, 16, 2)).astype(np.float32)
    out = np.zeros_like(image)
    r = tiny(image, out=out, features=False, strength=1.0, channel_axis=-1)
    assert r.image is out
    np.testing.assert_allclose(out, tiny(image, features=False, strength=1.0, channel_axis=-1).image, atol=1e-6)


def test_provenance_names_model_strengths_and_settings(tiny):
    r = tiny(np.random.default_rng(8).random((2, 12, 16)).astype(np.float32), strength=0.5)
    p = r.provenance
    assert p["model"] == "in-memory network" and len(p["model_sha256"]) == 64
    assert p["strength"] == [0.5, 0.5] and p["device"] == "cpu" and p["precision"] == "fp32"


def test_zarr_input_is_read_frame_by_frame_and_matches_numpy(tiny, tmp_path):
    """A zarr array (chunked on disk, no dask) deblurs to the numpy result; its range comes frame by frame."""
    zarr = pytest.importorskip("zarr")
    stack = np.random.default_rng(9).integers(0, 4096, (3, 12, 16), dtype=np.uint16)
    z = zarr.open_array(str(tmp_path / "s.zarr"), mode="w", shape=stack.shape, chunks=(1, 12, 16), dtype=stack.dtype)
    z[:] = stack
    np.testing.assert_array_equal(tiny(z, features=False, strength=1.0).image,
                                  tiny(stack, features=False, strength=1.0).image)
