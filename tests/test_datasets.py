import numpy as np
import pytest
from skimage.io import imsave

from napari_gldeblur import datasets as ds


def _write(folder, name, arr):
    folder.mkdir(parents=True, exist_ok=True)
    imsave(folder / name, arr, check_contrast=False)


def _rgb(seed, h=40, w=40):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_flat_layout(tmp_path):
    for i in range(3):
        _write(tmp_path / "blur", f"{i}.png", _rgb(i))
        _write(tmp_path / "sharp", f"{i}.png", _rgb(i + 10))
    pairs = ds.find_pairs(tmp_path)
    assert [(b.name, s.name) for b, s in pairs] == [(f"{i}.png", f"{i}.png") for i in range(3)]


def test_gopro_layout_and_16bit_gray(tmp_path):
    g16 = (np.random.default_rng(0).random((40, 40)) * 65535).astype(np.uint16)
    for seq in ("GOPR0001", "GOPR0002"):
        _write(tmp_path / seq / "blur", "a.tif", g16)
        _write(tmp_path / seq / "sharp", "a.tif", g16)
    pairs = ds.find_pairs(tmp_path)
    assert len(pairs) == 2
    img = ds.read_image(pairs[0][0])
    assert img.shape == (40, 40, 3) and img.dtype == np.float32
    assert np.allclose(img[..., 0], g16 / 65535, atol=1e-6)


def test_missing_partner_names_the_file(tmp_path):
    _write(tmp_path / "blur", "a.png", _rgb(0))
    _write(tmp_path / "blur", "b.png", _rgb(1))
    _write(tmp_path / "sharp", "a.png", _rgb(2))
    with pytest.raises(ValueError, match=r"b\.png has no partner"):
        ds.find_pairs(tmp_path)


def test_size_mismatch_and_unreadable_are_clear(tmp_path):
    _write(tmp_path / "blur", "a.png", _rgb(0, 40, 40))
    _write(tmp_path / "sharp", "a.png", _rgb(0, 30, 40))
    with pytest.raises(ValueError, match="size mismatch.*a.png"):
        ds.load_pairs([tmp_path])
    (tmp_path / "sharp" / "a.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="a.png: cannot read image"):
        ds.load_pairs([tmp_path])


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        ds.find_pairs(tmp_path / "nope")
    with pytest.raises(ValueError, match="no image pairs"):
        ds.find_pairs(tmp_path)


def test_patch_sampler_augments_consistently():
    rng = np.random.default_rng(0)
    sharp = rng.random((50, 60, 3)).astype(np.float32)
    blur = sharp * 0.5
    s = ds.PatchSampler([(blur, sharp)], patch=16, seed=1)
    x, y = s.batch(6)
    assert x.shape == y.shape == (6, 3, 16, 16)
    assert np.allclose(x.numpy(), 0.5 * y.numpy())  # the same crop, flip and rotation for both
    with pytest.raises(ValueError, match="smaller than the 64px patch"):
        ds.PatchSampler([(blur, sharp)], patch=64)


def test_batches_in_process_follow_the_sampler():
    sharp = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    a, b = ds.PatchSampler([(sharp, sharp)], patch=16, seed=2), ds.PatchSampler([(sharp, sharp)], patch=16, seed=2)
    stream = ds.batches(a, 3)
    for _ in range(2):
        assert all(np.array_equal(u, v) for u, v in zip(next(stream), b.batch(3)))


def test_batches_from_worker_processes_are_consistent_and_differ_per_worker():
    rng = np.random.default_rng(0)
    sharp = rng.random((64, 64, 3)).astype(np.float32)
    s = ds.PatchSampler([(sharp * 0.5, sharp)], patch=16, seed=1)
    stream = ds.batches(s, 4, workers=2)
    got = [next(stream) for _ in range(4)]
    stream.close()
    for x, y in got:
        assert x.shape == y.shape == (4, 3, 16, 16)
        assert np.allclose(x.numpy(), 0.5 * y.numpy())  # pairs stay aligned across the process boundary
    # the DataLoader alternates workers: batches 0 and 1 come from different random streams
    assert not np.array_equal(got[0][1].numpy(), got[1][1].numpy())


def test_split_is_reproducible_and_keeps_training_data():
    pairs = [(np.full((2, 2, 3), i), np.full((2, 2, 3), i)) for i in range(10)]
    tr, va = ds.split(pairs, 0.2, seed=3)
    tr2, va2 = ds.split(pairs, 0.2, seed=3)
    assert len(va) == 2 and len(tr) == 8
    assert [p[0][0, 0, 0] for p in va] == [p[0][0, 0, 0] for p in va2]
    tr, va = ds.split(pairs[:1], 0.5)
    assert len(tr) == 1 and va == []


# --- the online degradation stream -----------------------------------------------------------------
import torch  # noqa: E402

from napari_gldeblur.datasets import DegradationStream, downscaled_crop, warped_crop  # noqa: E402


def _sources():
    rng = np.random.default_rng(0)
    return [rng.random((150, 200, 3)).astype(np.float32), rng.random((120, 120, 3)).astype(np.float32)]


@pytest.mark.parametrize("kind", ["uniform", "dynamic", "mixed"])
def test_stream_batches_have_the_patch_shape_and_are_never_repeated(kind):
    stream = DegradationStream(_sources(), 32, kind, seed=0, dead_leaves=0.3)
    x1, y1 = stream.batch(3)
    x2, y2 = stream.batch(3)
    assert x1.shape == y1.shape == (3, 3, 32, 32)
    assert float(x1.min()) >= 0 and float(x1.max()) <= 1
    assert not torch.equal(y1, y2)


def test_stream_is_reproducible_from_its_seed():
    a = DegradationStream(_sources(), 24, "mixed", seed=3).batch(2)
    b = DegradationStream(_sources(), 24, "mixed", seed=3).batch(2)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_stream_blurs_on_average():
    """Blurry patches carry less fine detail than their targets (most patches are blurred)."""
    x, y = DegradationStream(_sources(), 48, "uniform", seed=1).batch(16)
    detail = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert detail(x) < 0.8 * detail(y)


@pytest.mark.parametrize("grain_targets", [True, False])
def test_identity_targets_keep_the_grain_only_when_asked(grain_targets):
    """Identity pairs: with grain targets the target is the input as recorded, so every pair is exact; with clean
    targets the recorded (noisy) input differs from its target in some pairs."""
    stream = DegradationStream(_sources(), 24, "uniform", seed=4, dead_leaves=0, mix={"identity": 1.0},
                               grain_targets=grain_targets)
    x, y = stream.batch(16)
    exact = [torch.equal(a, b) for a, b in zip(x, y)]
    assert all(exact) if grain_targets else not all(exact)


@pytest.mark.parametrize("kind", ["uniform", "dynamic"])
@pytest.mark.parametrize("denoise", [True, False])
def test_targets_keep_every_inputs_grain_unless_denoising(kind, denoise):
    """On flat content blur changes nothing, so input and target differ only by noise: without denoising every
    target is recorded with its input's grain (exact pairs); with it, noisy inputs have clean targets."""
    flat = [np.full((120, 120, 3), 0.4, np.float32)]
    x, y = DegradationStream(flat, 24, kind, seed=5, dead_leaves=0, grain_targets=False, denoise=denoise).batch(16)
    same = [float((a - b).abs().max()) < 1e-5 for a, b in zip(x, y)]
    assert all(same) if not denoise else sum(same) <= 8


def test_shapes_content_brings_flat_regions_and_stripes():
    """Procedural shapes are flat between sharp edges: many neighbouring pixels equal, unlike the noise sources."""
    def flat_share(shapes: float) -> float:
        stream = DegradationStream(_sources(), 48, "uniform", seed=5, dead_leaves=0, shapes=shapes,
                                   mix={"identity": 1.0}, grain_targets=False)
        _, y = stream.batch(8)
        return float(((y[..., 1:] - y[..., :-1]).abs() < 1e-4).float().mean())

    assert flat_share(1.0) > 0.3 and flat_share(0.0) < 0.01
    x, y = DegradationStream([], 32, "mixed", seed=1, dead_leaves=0, shapes=1.0).batch(4)  # shapes alone will do
    assert x.shape == y.shape == (4, 3, 32, 32)


@pytest.mark.parametrize("content", ["soft", "shallow_focus"])
def test_soft_content_gives_soft_targets(content):
    """Softened crops (resampled down and up) and shallow-focus crops (a sharp subject over a defocused
    background) carry less fine detail: their targets' pixel-to-pixel differences are smaller than those of the
    same stream's plain crops."""
    def detail(share: float) -> float:
        stream = DegradationStream(_sources(), 48, "uniform", seed=6, dead_leaves=0, **{content: share},
                                   mix={"identity": 1.0}, grain_targets=False)
        _, y = stream.batch(8)
        return float((y[..., 1:] - y[..., :-1]).abs().mean())

    assert detail(1.0) < 0.8 * detail(0.0)


@pytest.mark.parametrize("option", ["recolour", "warp"])
def test_recolour_and_warp_shares_change_the_targets_reproducibly(option):
    def targets(share: float):
        stream = DegradationStream(_sources(), 32, "uniform", seed=3, dead_leaves=0, mix={"identity": 1.0},
                                   grain_targets=False, **{option: share})
        return stream.batch(4)[1]

    plain, changed = targets(0.0), targets(1.0)
    assert torch.equal(plain, targets(0.0)) and torch.equal(changed, targets(1.0))
    assert not torch.allclose(changed, plain)


def test_fixed_pairs_do_not_move_the_training_stream():
    stream = DegradationStream(_sources(), 24, "uniform", seed=2)
    val1 = stream.fixed_pairs(2, 40, seed=9)
    val2 = stream.fixed_pairs(2, 40, seed=9)
    assert val1[0][0].shape == (40, 40, 3) and all(np.array_equal(a[0], b[0]) for a, b in zip(val1, val2))


def test_downscaled_crop_shrinks_the_source():
    src = np.zeros((400, 400, 3), np.float32)
    src[:, ::2] = 1  # one-pixel stripes: a shrunk crop averages them
    crop = downscaled_crop(src, 50, np.random.default_rng(0), min_scale=0.3)
    assert crop.shape == (50, 50, 3) and crop.dtype == np.float32
    for seed in (2, 3):  # these seeds shrink crops of 103 and 139 px: antialiased, the stripes become grey
        crop = downscaled_crop(src, 50, np.random.default_rng(seed), min_scale=0.3)
        assert abs(crop.mean() - 0.5) < 0.01 and crop.std() < 0.05, (seed, crop.std())


def _stripes(period: float, size: int = 400) -> np.ndarray:
    """Sinusoidal stripes across the rows: all their edges run along x."""
    rows = 0.5 + 0.4 * np.sin(2 * np.pi * np.arange(size) / period)
    return np.repeat(np.repeat(rows[:, None, None], size, 1), 3, 2).astype(np.float32)


def _gradients(image: np.ndarray) -> tuple[float, float]:
    grey = image.mean(-1)
    return float(np.abs(np.diff(grey, axis=0)).mean()), float(np.abs(np.diff(grey, axis=1)).mean())


def test_warped_crop_turns_the_edges():
    src = _stripes(12.0)
    plain = downscaled_crop(src, 48, np.random.default_rng(0), min_scale=0.3)
    assert _gradients(plain)[1] < 1e-6  # an axis-aligned crop keeps the stripes along x
    turned = []
    for seed in range(8):
        view = warped_crop(src, 48, np.random.default_rng(seed))
        assert view.shape == (48, 48, 3) and view.dtype == np.float32 and 0 <= view.min() and view.max() <= 1
        dy, dx = _gradients(view)
        turned.append(dx / (dx + dy))
    assert np.mean(turned) > 0.25 and max(turned) > 0.4, turned


def test_warped_crop_is_as_sharp_as_a_plain_crop():
    """Stripes of 4 px in the view: rotated at the view's own resolution, bilinear interpolation keeps 81% of their
    contrast; rotated at the source's, a view keeps the contrast a plain crop of the same scale has."""
    src, rng = _stripes(8.0), np.random.default_rng(1)
    plain = torch.nn.functional.interpolate(torch.from_numpy(src[:96, :96]).permute(2, 0, 1)[None], size=(48, 48),
                                            mode="bilinear", antialias=True, align_corners=False)
    for _ in range(6):
        view = warped_crop(src, 48, rng, scale=(0.5, 0.5), stretch=1.0)
        assert float(view[8:-8, 8:-8].std()) > 0.95 * float(plain.std()), (float(view.std()), float(plain.std()))


def test_warped_crop_of_a_small_source_is_a_plain_crop():
    src = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    view = warped_crop(src, 32, np.random.default_rng(0))
    assert view.shape == (32, 32, 3)


def test_stream_needs_content():
    with pytest.raises(ValueError, match="needs source pictures"):
        DegradationStream([], 32, dead_leaves=0)
    with pytest.raises(ValueError, match="unknown stream kind"):
        DegradationStream(_sources(), 32, kind="motion")


def test_12_bit_pairs_are_mapped_by_their_depth_and_one_range(tmp_path):
    """uint16 pairs holding 12-bit data (0-4095) come out by 0-4095, not 0-65535, and with one range for both
    partners: a sharp partner reaching 4095 and a blurry one peaking at 3000 keep their relative levels."""
    from napari_gldeblur.datasets import load_pairs
    from napari_gldeblur.imageio import write_image_file

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 4096, (32, 32), dtype=np.uint16)
    sharp[0, 0] = 4095
    blur = np.minimum(sharp, 3000).astype(np.uint16)
    for name, arr in (("blur", blur), ("sharp", sharp)):
        write_image_file(tmp_path / name / "a.png", arr)
    (b, s), = load_pairs([tmp_path])
    assert s.max() == pytest.approx(1.0)
    assert b.max() == pytest.approx(3000 / 4095, abs=1e-6)
    np.testing.assert_allclose(s[..., 0], sharp / 4095.0, atol=1e-6)


def test_reblur_sampler_blurs_fresh_content_with_the_given_kernel():
    """Every patch is new content under (a slight jitter of) the kernel: blurrier than its target, 8-bit."""
    from napari_gldeblur import degradations as dg
    from napari_gldeblur.datasets import MixedSampler, PatchSampler, ReblurSampler

    rng = np.random.default_rng(0)
    sources = [rng.random((80, 90, 3)).astype(np.float32) for _ in range(3)]
    kernel = dg.line_kernel(11.0)
    sampler = ReblurSampler(sources, kernel, 0.005, patch=32, seed=1)
    x, y = sampler.batch(4)
    assert x.shape == y.shape == (4, 3, 32, 32)
    assert not torch.equal(y[0], y[1])
    assert float((x - y).abs().mean()) > 0.05  # random content under an 11 px streak changes a lot
    np.testing.assert_allclose((x * 255).numpy(), np.round((x * 255).numpy()), atol=1e-3)
    pairs = [(s[:40, :40], s[:40, :40]) for s in sources]
    mixed = MixedSampler([PatchSampler(pairs, 32, seed=2), sampler], [0.75, 0.25])
    xb, yb = mixed.batch(8)
    assert xb.shape == (8, 3, 32, 32)
    assert torch.equal(xb[:6], yb[:6]) and not torch.equal(xb[6:], yb[6:])  # 6 identity pairs, 2 re-blurred
