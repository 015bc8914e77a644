"""Blur synthesis: a seeded kernel bank for global (uniform) blur and GoPro-like dynamic scenes.

Global blur follows the paper's global blur dataset (section 4.1): 32 motion, 16 Gaussian and 8 defocus
kernels convolved with sharp images. Dynamic-scene blur follows GoPro (Nah et al. 2017): a burst of sharp
sub-frames, with a slightly moving camera and faster independently moving foreground objects, averaged
in linear light (gamma 2.2 camera response); the middle sub-frame is the sharp target.
All images are float32 (H, W, 3) in [0, 1].
"""
from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from scipy import ndimage, signal

from .degradations import splat

GAMMA = 2.2  # camera response used by GoPro to go to linear light
# skimage.data images held out of every training set (`cat` is the same picture as `chelsea`).
HELD_OUT = ("chelsea", "coffee", "rocket")
TRAIN_IMAGES = ("astronaut", "brick", "camera", "cell", "clock", "coins", "grass", "gravel",
                "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "text", "colorwheel")


@dataclass(frozen=True)
class Kernel:
    kind: str  # "motion" | "gaussian" | "defocus"
    array: np.ndarray  # (k, k) float32, sums to 1


# --- kernels ---------------------------------------------------------------------------------------
def motion_kernel(rng: np.random.Generator, max_length: float = 25.0, size: int = 31) -> np.ndarray:
    """A camera-shake trajectory (random walk with inertia) rasterised with sub-pixel splatting."""
    length = rng.uniform(4.0, max_length)
    n = 200
    velocity = rng.normal(size=2)
    velocity /= np.linalg.norm(velocity) + 1e-8
    pts = np.zeros((n, 2))
    for i in range(1, n):
        velocity = 0.9 * velocity + rng.normal(scale=0.35, size=2)  # inertia + shake
        velocity /= np.linalg.norm(velocity) + 1e-8
        pts[i] = pts[i - 1] + velocity
    seg = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    pts = pts * (length / max(seg[-1], 1e-6))
    pts -= pts.mean(0)  # centre of mass on the centre pixel (constant speed): no shift against the target
    k = splat(pts, np.ones(n), size)  # on the fixed canvas: the bank's kernels are all `size` px
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(sigma_y: float, sigma_x: float, angle: float, size: int = 21) -> np.ndarray:
    """An (an)isotropic Gaussian, rotated by ``angle`` radians."""
    r = np.arange(size) - (size - 1) / 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).astype(np.float32)


def defocus_kernel(radius: float, size: int = 21) -> np.ndarray:
    """An anti-aliased disk (out-of-focus blur), supersampled 8x."""
    ss = 8
    r = (np.arange(size * ss) + 0.5) / ss - size / 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    disk = (yy**2 + xx**2 <= radius**2).astype(np.float64)
    k = disk.reshape(size, ss, size, ss).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def mild_kernel(rng: np.random.Generator, low: float = 0.3, high: float = 0.8) -> np.ndarray:
    """A barely-there Gaussian (sigma ``low``-``high`` px, below the bank's 0.8-3 px): nearly sharp input
    the network should leave almost unchanged."""
    return gaussian_kernel(rng.uniform(low, high), rng.uniform(low, high), rng.uniform(0, np.pi), size=7)


def kernel_bank(seed: int = 0) -> list[Kernel]:
    """32 motion, 16 Gaussian (8 isotropic, 8 anisotropic) and 8 defocus kernels, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    bank = [Kernel("motion", motion_kernel(rng)) for _ in range(32)]
    for i in range(16):
        sy = rng.uniform(0.8, 3.0)
        sx = sy if i < 8 else rng.uniform(0.8, 3.0)
        bank.append(Kernel("gaussian", gaussian_kernel(sy, sx, rng.uniform(0, np.pi))))
    bank += [Kernel("defocus", defocus_kernel(r)) for r in np.linspace(1.5, 6.0, 8)]
    return bank


# --- degradations ----------------------------------------------------------------------------------
def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with reflected borders (no dark frame around the picture)."""
    p = kernel.shape[0] // 2
    padded = np.pad(image, ((p, p), (p, p), (0, 0)), mode="reflect")
    out = np.stack([signal.fftconvolve(padded[..., c], kernel, mode="valid") for c in range(image.shape[2])], -1)
    return np.clip(out, 0, 1).astype(np.float32)


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(image + rng.normal(scale=sigma, size=image.shape), 0, 1).astype(np.float32)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip in memory (compression artefacts, 8-bit quantisation)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.float32) / 255


def degrade(image: np.ndarray, rng: np.random.Generator, noise: float = 0.01, jpeg_prob: float = 0.3) -> np.ndarray:
    """Optional sensor noise (sigma up to ``noise``) and, with probability ``jpeg_prob``, JPEG quantisation."""
    if noise > 0:
        image = add_noise(image, rng, rng.uniform(0, noise))
    if rng.random() < jpeg_prob:
        image = jpeg(image, rng.integers(60, 96))
    return image


def blur_global(sharp: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Uniform blur: the same kernel everywhere."""
    return convolve(sharp, kernel)


# --- dynamic scenes --------------------------------------------------------------------------------
def random_shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A soft-edged random blob (thresholded smooth noise, largest part) covering 10-35% of a square."""
    for _ in range(20):
        noise = ndimage.gaussian_filter(rng.normal(size=(size, size)), size / 6)
        yy, xx = np.mgrid[:size, :size]
        centre = 1 - np.hypot(yy - size / 2, xx - size / 2) / (size / 2)  # prefer the middle
        field = noise / (noise.std() + 1e-8) + 2.5 * centre
        mask = field > np.quantile(field, 1 - rng.uniform(0.1, 0.35))
        labels, n = ndimage.label(mask)
        if n:
            mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
            if mask.mean() > 0.05:
                return ndimage.gaussian_filter(mask.astype(np.float32), 0.7)
    return np.zeros((size, size), np.float32)


def soften(image: np.ndarray, rng: np.random.Generator, low: float = 0.4, high: float = 0.8) -> np.ndarray:
    """Soft but unblurred content, like a downscaled video frame: resampled down by ``low``-``high`` and back up."""
    from skimage.transform import rescale, resize

    small = rescale(image, rng.uniform(low, high), channel_axis=-1, anti_aliasing=True)
    return np.clip(resize(small, image.shape[:2], order=1, anti_aliasing=False), 0, 1).astype(np.float32)


def recolour(image: np.ndarray, rng: np.random.Generator, saturation: tuple[float, float] = (0.3, 1.6),
             gamma: tuple[float, float] = (0.6, 1.6)) -> np.ndarray:
    """The same picture in other colours and tones: channels permuted, saturation scaled about the grey, a
    random gamma. More content from few photographs, so the network learns blur rather than their look."""
    x = image[..., rng.permutation(3)]
    grey = x.mean(-1, keepdims=True)
    x = np.clip(grey + rng.uniform(*saturation) * (x - grey), 0, 1)
    return (x ** rng.uniform(*gamma)).astype(np.float32)


def fine_detail(image: np.ndarray) -> float:
    """Mean |grey - grey blurred by a 1 px Gaussian| of an (H, W, 3) picture: how much in-focus detail it shows
    (``strength.fine_detail`` measures the same on the 8-bit frames auto strength sees)."""
    grey = image.mean(-1, dtype=np.float64)
    return float(np.abs(grey - ndimage.gaussian_filter(grey, 1.0)).mean())


def shallow_focus(background: np.ndarray, subject: np.ndarray, rng: np.random.Generator,
                  radius: tuple[float, float] = (2.0, 10.0), tries: int = 4) -> np.ndarray:
    """A picture with a shallow depth of field: a sharp subject (a random shape cut from the most detailed of
    ``tries`` windows of ``subject``, so the picture shows what is in focus) over the square ``background``
    defocused, in linear light, by a disk of ``radius`` px. As a target it is blur that a photograph has on
    purpose (bokeh, an out-of-focus wall) and a deblurrer must keep; a flat subject would make it a blurred
    picture with a blob on it, which a deblurrer should sharpen."""
    from .degradations import blur, defocus_kernel, to_linear, to_srgb

    size = background.shape[0]
    defocused = to_srgb(blur(to_linear(background), defocus_kernel(rng.uniform(*radius))))
    side = int(rng.integers(size // 2, size + 1))  # the subject's shape covers 10-35% of a square this wide
    cut = max((random_crop(subject, rng, side) for _ in range(tries)), key=fine_detail)
    layer, alpha = place(cut, random_shape_mask(rng, side),
                         rng.integers(0, size - side + 1, size=2).astype(float), size)  # whole pixels: no resampling
    return np.clip(defocused * (1 - alpha[..., None]) + layer * alpha[..., None], 0, 1).astype(np.float32)


def window(image: np.ndarray, y: float, x: float, size: int) -> np.ndarray:
    """The ``size`` x ``size`` window of ``image`` whose top-left corner is at sub-pixel ``(y, x)``, bilinear;
    the window and the pixel beyond it must lie inside ``image``. ``ndimage.shift(order=1)`` computes the same,
    50x slower, and the dynamic scenes use it for every sub-frame."""
    iy, ix = int(np.floor(y)), int(np.floor(x))
    fy, fx = np.float32(y - iy), np.float32(x - ix)
    a = image[iy : iy + size + 1, ix : ix + size + 1]
    rows = a[:-1] * (1 - fy) + a[1:] * fy
    return rows[:, :-1] * (1 - fx) + rows[:, 1:] * fx


def random_crop(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size crop (the image is upscaled first if it is too small)."""
    h, w = image.shape[:2]
    if h < size or w < size:
        from skimage.transform import resize

        s = size / min(h, w)
        image = resize(image, (int(np.ceil(h * s)), int(np.ceil(w * s))), anti_aliasing=False).astype(np.float32)
        h, w = image.shape[:2]
    y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return image[y : y + size, x : x + size]


def dynamic_scene(background: np.ndarray, others: Sequence[np.ndarray], rng: np.random.Generator, size: int,
                  objects: int | None = None, camera_px: float = 6.0, object_px: tuple[float, float] = (8.0, 28.0),
                  return_motion: bool = False):
    """Render a GoPro-like burst and average it: ``(blur, sharp)`` or ``(blur, sharp, object_mask)``.

    The camera drifts by up to ``camera_px`` over the exposure; each foreground object (a random shape
    cut from one of ``others``) moves ``object_px`` pixels, so objects blur more than the background.
    """
    n_frames = 7 + 2 * int(rng.integers(4))  # 7, 9, 11 or 13 sub-frames: an odd count has a middle frame at t = 0
    margin = int(np.ceil(camera_px)) + 2
    bg = random_crop(background, rng, size + 2 * margin)
    cam = rng.normal(size=2)
    cam *= rng.uniform(0, camera_px) / (np.linalg.norm(cam) + 1e-8)
    n_obj = int(rng.integers(1, 4)) if objects is None else objects
    objs = []
    for _ in range(n_obj):
        osz = int(rng.integers(size // 4, size // 2 + 1))
        tex = random_crop(others[int(rng.integers(len(others)))] if len(others) else background, rng, osz)
        move = rng.normal(size=2)
        move *= rng.uniform(*object_px) / (np.linalg.norm(move) + 1e-8)
        pos = rng.uniform(0, size - osz, size=2)
        objs.append((tex, random_shape_mask(rng, osz), pos, move))
    t = np.linspace(-0.5, 0.5, n_frames)
    frames, masks = [], []
    for ti in t:
        dy, dx = cam * ti
        frame = window(bg, margin - dy, margin - dx, size)  # the background moved by (dy, dx)
        occupied = np.zeros((size, size), np.float32)
        for tex, mask, pos, move in objs:
            layer, alpha = place(tex, mask, pos + move * ti, size)
            frame = frame * (1 - alpha[..., None]) + layer * alpha[..., None]
            occupied = np.maximum(occupied, alpha)
        frames.append(np.clip(frame, 0, 1))
        masks.append(occupied)
    linear = np.mean([f**GAMMA for f in frames], axis=0)  # integrate in linear light
    blur = (linear ** (1 / GAMMA)).astype(np.float32)
    sharp = frames[n_frames // 2].astype(np.float32)  # mid-exposure: where the blur's centre of mass is
    if return_motion:
        return blur, sharp, np.max(masks, axis=0)
    return blur, sharp


def place(tex: np.ndarray, mask: np.ndarray, pos: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Paste a textured object at a sub-pixel position on an empty size x size canvas: (layer, alpha)."""
    osz = tex.shape[0]
    iy, ix = int(np.floor(pos[0])), int(np.floor(pos[1]))
    fy, fx = pos[0] - iy, pos[1] - ix
    tex_s = window(np.pad(tex, ((2, 2), (2, 2), (0, 0)), mode="edge"), 1 - fy, 1 - fx, osz + 2)  # moved by (fy, fx)
    mask_s = window(np.pad(mask, 2), 1 - fy, 1 - fx, osz + 2)
    layer = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    y0, x0 = iy - 1, ix - 1
    ys, xs = slice(max(y0, 0), min(y0 + osz + 2, size)), slice(max(x0, 0), min(x0 + osz + 2, size))
    ty, tx = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
    if ys.stop > ys.start and xs.stop > xs.start:
        layer[ys, xs] = tex_s[ty, tx]
        alpha[ys, xs] = mask_s[ty, tx]
    return layer, alpha


# --- sources and pairs -----------------------------------------------------------------------------
def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1] from gray/RGB/RGBA of any integer or float dtype."""
    from skimage.util import img_as_float32

    image = img_as_float32(np.asarray(image))
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.clip(image[..., :3], 0, 1)


def skimage_images(names: Sequence[str] = TRAIN_IMAGES) -> list[np.ndarray]:
    """Images bundled with scikit-image (no downloads), as float RGB."""
    import skimage.data

    return [as_rgb_float(getattr(skimage.data, n)()) for n in names]


def procedural_image(rng: np.random.Generator, size: int = 384) -> np.ndarray:
    """Synthetic content with sharp edges: random shapes, stripes and text-like bars over a gradient."""
    from skimage.draw import random_shapes

    yy, xx = np.mgrid[:size, :size] / size
    base = np.stack([rng.uniform(0.1, 0.9) + rng.uniform(-0.3, 0.3) * (yy if c % 2 else xx) for c in range(3)], -1)
    shapes, _ = random_shapes((size, size), max_shapes=int(rng.integers(8, 30)), min_size=8, max_size=size // 3,
                              channel_axis=-1, rng=int(rng.integers(1 << 31)), allow_overlap=True)
    shapes = shapes.astype(np.float32) / 255
    inside = (shapes < 1).any(-1, keepdims=True)
    img = np.where(inside, shapes, base)
    period = int(rng.integers(3, 12))  # fine stripes: high frequencies for the network to recover
    y0 = int(rng.integers(0, size - size // 4))
    stripes = ((np.arange(size) // period) % 2).astype(np.float32)
    img[y0 : y0 + size // 8, :, :] = stripes[None, :, None] * rng.uniform(0.5, 1.0)
    return np.clip(img, 0, 1).astype(np.float32)


def dead_leaves_image(rng: np.random.Generator, size: int = 384, textures: Sequence[np.ndarray] = (),
                      rmin: float = 3.0, coverage: float = 4.0) -> np.ndarray:
    """Dead-leaves content: occluding ellipses with power-law radii (density r^-3), painted back to front.

    It has the scale-invariant edge and occlusion statistics of natural pictures: denoising and super-resolution
    networks trained on it alone come close to ones trained on natural pictures (Achddou et al., "Synthetic
    images as a regularity prior for image restoration neural networks", SSVM 2021). Leaves are flat, shaded,
    striped or cut from ``textures`` (their colours come from them too, or are uniform at random), with
    anti-aliased edges. ``coverage`` is the
    mean number of leaves over a pixel, so about exp(-coverage) of the background shows.
    """
    rmax = size / 2
    mean_r2 = 2 * np.log(rmax / rmin) / (rmin ** -2 - rmax ** -2)  # E[r^2] under density r^-3
    leaves = int(coverage * size * size / (np.pi * 0.7 * mean_r2))  # 0.7: the mean aspect ratio
    yy, xx = np.mgrid[:size, :size].astype(np.float32)

    def colour() -> np.ndarray:
        if not textures or rng.random() < 0.15:
            return rng.uniform(0, 1, 3).astype(np.float32)
        t = textures[int(rng.integers(len(textures)))]
        return t[int(rng.integers(t.shape[0])), int(rng.integers(t.shape[1]))]

    img = np.broadcast_to(colour(), (size, size, 3)).copy()
    u = rng.random(leaves)
    radii = (rmin ** -2 - u * (rmin ** -2 - rmax ** -2)) ** -0.5  # inverse CDF of r^-3 on [rmin, rmax]
    for r in radii:
        a, b = r, r * rng.uniform(0.4, 1.0)
        cy, cx = rng.uniform(-r, size + r, 2)
        y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, size)
        x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, size)
        if y0 >= y1 or x0 >= x1:
            continue
        th = rng.uniform(0, np.pi)
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u_, v_ = dx * np.cos(th) + dy * np.sin(th), -dx * np.sin(th) + dy * np.cos(th)
        d = np.sqrt((u_ / a) ** 2 + (v_ / b) ** 2)
        alpha = np.clip((1 - d) * b + 0.5, 0, 1)[..., None]  # ~1 px anti-aliased edge
        style = rng.random()
        if style < 0.2 and textures and r > 6:  # a patch of real texture
            t = textures[int(rng.integers(len(textures)))]
            h, w = y1 - y0, x1 - x0
            if t.shape[0] > h and t.shape[1] > w:
                oy, ox = int(rng.integers(t.shape[0] - h)), int(rng.integers(t.shape[1] - w))
                fill = t[oy : oy + h, ox : ox + w]
            else:
                fill = colour()
        elif style < 0.5:  # shading: a linear gradient between two colours
            g = np.clip(0.5 + u_ / (2 * a), 0, 1)[..., None]
            fill = (1 - g) * colour() + g * colour()
        elif style < 0.6:  # stripes: fine periodic detail
            s = 0.5 + 0.5 * np.sin(v_ * 2 * np.pi / rng.uniform(2.5, 12))[..., None]
            fill = (1 - s) * colour() + s * colour()
        else:
            fill = colour()
        img[y0:y1, x0:x1] = (1 - alpha) * img[y0:y1, x0:x1] + alpha * fill
    return np.clip(img, 0, 1).astype(np.float32)


def make_pair(kind: str, source: np.ndarray, rng: np.random.Generator, size: int,
              others: Sequence[np.ndarray] | None = None, bank: Sequence[Kernel] | None = None,
              noise: float = 0.01, jpeg_prob: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """One (blur, sharp) pair of ``size`` x ``size`` from ``source``: kind ``global``, ``dynamic``, ``mixed``,
    ``mild`` (a barely blurred, nearly sharp picture), ``sharp`` (no blur, no noise: an identity pair) or
    ``soft`` (an identity pair of soft, possibly noisy content)."""
    if kind == "mixed":
        kind = "global" if rng.random() < 0.5 else "dynamic"
    if kind in ("global", "mild"):
        bank = bank if bank is not None else kernel_bank(0)
        k = bank[int(rng.integers(len(bank)))].array if kind == "global" else mild_kernel(rng)
        pad = k.shape[0]
        crop = random_crop(source, rng, size + 2 * pad)  # blur a larger crop: real content at the borders
        blur = blur_global(crop, k)[pad:-pad, pad:-pad]
        sharp = crop[pad:-pad, pad:-pad]
    elif kind == "dynamic":
        blur, sharp = dynamic_scene(source, others or [source], rng, size)
    elif kind == "sharp":  # identity pairs: teach the network to leave sharp pictures alone
        sharp = random_crop(source, rng, size)
        return sharp.copy(), np.ascontiguousarray(sharp, dtype=np.float32)
    elif kind == "soft":  # identity pairs on soft, noisy content (video frames): softness is not blur to undo
        sharp = degrade(soften(random_crop(source, rng, size), rng), rng, noise, jpeg_prob)
        return sharp.copy(), np.ascontiguousarray(sharp, dtype=np.float32)
    else:
        raise ValueError(f"unknown blur kind {kind!r}; choose global, dynamic, mixed, mild, sharp or soft")
    return degrade(blur, rng, noise, jpeg_prob), np.ascontiguousarray(sharp, dtype=np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def jitter_source(image: np.ndarray, rng: np.random.Generator, min_size: int) -> np.ndarray:
    """More content from few pictures: random down-scaling (0.5-1x), channel order, gain and gamma."""
    from skimage.transform import rescale

    scale = max(rng.uniform(0.5, 1.0), min_size / min(image.shape[:2]))
    if scale < 1:
        image = rescale(image, scale, channel_axis=-1, anti_aliasing=True).astype(np.float32)
    image = image[..., rng.permutation(3)]
    return np.clip(rng.uniform(0.7, 1.2) * image ** rng.uniform(0.8, 1.25), 0, 1).astype(np.float32)


def iter_pairs(kind: str, sources: Sequence[np.ndarray], count: int, size: int, seed: int = 0,
               procedural: float = 0.25, kernel_seed: int | None = None,
               augment: bool = False, content: str = "shapes") -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``count`` reproducible pairs; a fraction ``procedural`` uses generated content instead of ``sources``.

    The kernel bank is ``kernel_bank(kernel_seed)`` (default: ``seed``); ``augment`` jitters each source.
    ``content`` picks the generator: ``shapes`` (procedural_image) or ``dead-leaves`` (dead_leaves_image,
    coloured and textured from ``sources``).
    """
    if content not in ("shapes", "dead-leaves"):
        raise ValueError(f"unknown content {content!r}; choose shapes or dead-leaves")
    generate = procedural_image if content == "shapes" else functools.partial(dead_leaves_image, textures=sources)
    bank = kernel_bank(seed if kernel_seed is None else kernel_seed)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        pool = list(sources)
        if not pool or rng.random() < procedural:
            src = generate(rng, max(384, size + 64))
            pool = pool + [generate(rng, size)]
        else:
            src = pool[int(rng.integers(len(pool)))]
            if augment:
                src = jitter_source(src, rng, size + 64)
        yield make_pair(kind, src, rng, size, pool, bank)


def write_pairs(out: str | os.PathLike, pairs: Iterator[tuple[np.ndarray, np.ndarray]], prefix: str = "") -> int:
    """Write ``out/blur/NAME.png`` and ``out/sharp/NAME.png`` (8-bit); returns how many were written."""
    from skimage.io import imsave

    out = Path(out)
    (out / "blur").mkdir(parents=True, exist_ok=True)
    (out / "sharp").mkdir(parents=True, exist_ok=True)
    n = 0
    for n, (blur, sharp) in enumerate(pairs, 1):
        name = f"{prefix}{n - 1:05d}.png"
        imsave(out / "blur" / name, to_uint8(blur), check_contrast=False)
        imsave(out / "sharp" / name, to_uint8(sharp), check_contrast=False)
    return n
