"""Online degradations: blur kernels from continuous families and a camera model, drawn fresh for every patch.

Each function is small and composable (as KAIR's ``utils_blindsr``): a kernel family, the camera's response,
its saturation, noise and JPEG. ``degrade_pair`` chains them into one (blurry, sharp) training pair: the sharp
crop goes to linear light, its highlights are lifted above the clipping point (saturated light sources smear,
as in RSBlur, Rim et al. ECCV 2022), it is blurred, clipped, given shot + read noise, returned to sRGB and
JPEG-compressed. The kernel size follows the blur. All images are float32 (H, W, 3) in [0, 1].
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
from scipy import ndimage, signal

Rng = np.random.Generator
GAMMA = 2.2  # camera response (GoPro's, Nah et al. 2017)

# --- kernel families -----------------------------------------------------------------------------------


def splat(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Bilinear splatting of weighted sub-pixel points (y, x) onto a (size, size) grid centred on (0, 0).

    Each point spreads its weight over its four nearest pixels, which keeps the points' centre of mass as long as
    none falls off the grid; weight that does is dropped. Unnormalised.
    """
    p = points + (size - 1) / 2
    i0 = np.floor(p).astype(int)
    f = p - i0
    k = np.zeros((size, size))
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        y, x = i0[:, 0] + dy, i0[:, 1] + dx
        inside = (y >= 0) & (y < size) & (x >= 0) & (x < size)
        share = weights * (f[:, 0] if dy else 1 - f[:, 0]) * (f[:, 1] if dx else 1 - f[:, 1])
        np.add.at(k, (y[inside], x[inside]), share[inside])
    return k


def rasterise(points: np.ndarray, weights: np.ndarray | None = None, pad: int = 2) -> np.ndarray:
    """A normalised kernel from sub-pixel trajectory points (bilinear splatting); its size fits the points.

    The kernel's centre of mass sits on its centre pixel, so a blurred picture is not shifted against its
    sharp target: a streak's centre of mass is where the sharp edge was, which the blurred picture shows. Centred
    on the trajectory's bounding box instead, an unevenly exposed shake moves the picture by up to a few pixels
    in a direction only the whole kernel reveals, and a restorer that cannot guess it gains little.
    """
    w = np.ones(len(points)) if weights is None else np.asarray(weights, np.float64)
    points = points - (w[:, None] * points).sum(0) / w.sum()  # bilinear splats keep this centre of mass
    half = int(np.ceil(np.abs(points).max())) + pad
    k = splat(points, w, 2 * half + 1)
    return (k / k.sum()).astype(np.float32)


def line_kernel(length: float, angle_deg: float = 45.0) -> np.ndarray:
    """A straight, evenly exposed motion streak of ``length`` px at ``angle_deg`` (0: horizontal)."""
    t = np.linspace(0.0, length, 256)
    a = np.deg2rad(angle_deg)
    return rasterise(np.stack([t * np.sin(a), t * np.cos(a)], 1))


def shake_kernel(rng: Rng, length: float) -> np.ndarray:
    """Camera shake: a random trajectory of ``length`` px, straight, curved or jerky, exposed unevenly.

    The velocity turns smoothly (curvature), with occasional jerks; the speed varies along the path, so some
    parts of the streak are brighter, as a hand at 1/15 s makes them.
    """
    n = max(64, int(length * 8))
    bend = rng.choice([0.0, rng.uniform(0, 1.5), rng.uniform(1.5, 4.0)])  # total turn (rad): straight/curved/more
    wiggle = ndimage.gaussian_filter1d(rng.normal(size=n), n / 10)
    turn = (rng.choice([-1, 1]) + 0.7 * wiggle / (wiggle.std() + 1e-8)) * bend / n
    jerks = rng.random(n) < rng.uniform(0, 3 / n)  # a few sudden changes of direction
    turn[jerks] += rng.normal(scale=0.8, size=jerks.sum())
    angle = rng.uniform(0, 2 * np.pi) + np.cumsum(turn)
    speed = np.clip(1 + rng.uniform(0, 0.8) * ndimage.gaussian_filter1d(rng.normal(size=n), n / 8) * 3, 0.2, None)
    step = np.stack([np.sin(angle), np.cos(angle)], 1) * speed[:, None]
    path = np.cumsum(step, 0)
    path *= length / max(np.linalg.norm(np.diff(path, axis=0), axis=1).sum(), 1e-6)
    return rasterise(path, weights=1 / speed)  # slower = longer exposed = brighter


def gaussian_kernel(sigma_y: float, sigma_x: float, angle: float) -> np.ndarray:
    """An anisotropic Gaussian rotated by ``angle`` radians, 3 sigma wide."""
    half = max(1, int(np.ceil(3 * max(sigma_y, sigma_x))))
    r = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).astype(np.float32)


def defocus_kernel(radius: float) -> np.ndarray:
    """An anti-aliased disk (out-of-focus blur), supersampled 8x."""
    size, ss = 2 * int(np.ceil(radius)) + 3, 8
    r = (np.arange(size * ss) + 0.5) / ss - size / 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    k = (yy**2 + xx**2 <= radius**2).astype(np.float64).reshape(size, ss, size, ss).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two blurs one after the other (e.g. shake, then slight defocus): their kernels convolved."""
    k = signal.fftconvolve(a, b, mode="full").clip(0)
    return (k / k.sum()).astype(np.float32)


def identity_kernel() -> np.ndarray:
    return np.ones((1, 1), np.float32)


def random_shake(rng: Rng, low: float = 3, high: float = 45) -> np.ndarray:
    """A shake of a length drawn log-uniformly in [low, high] px: short shakes are common, long ones happen."""
    return shake_kernel(rng, float(np.exp(rng.uniform(np.log(low), np.log(high)))))


def random_gaussian(rng: Rng, low: float = 0.6, high: float = 4.0) -> np.ndarray:
    return gaussian_kernel(rng.uniform(low, high), rng.uniform(low, high), rng.uniform(0, np.pi))


def random_defocus(rng: Rng, low: float = 1.0, high: float = 8.0) -> np.ndarray:
    return defocus_kernel(rng.uniform(low, high))


def random_composite(rng: Rng) -> np.ndarray:
    """Shake then a slight defocus or Gaussian: what a shaken, slightly misfocused camera records."""
    slight = random_defocus(rng, 0.7, 2.5) if rng.random() < 0.5 else random_gaussian(rng, 0.4, 1.5)
    return compose(random_shake(rng), slight)


def random_mild(rng: Rng) -> np.ndarray:
    """Nearly sharp: a sub-pixel Gaussian or a 1-3 px shake; the network should barely change these."""
    return gaussian_kernel(rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.7), rng.uniform(0, np.pi)) \
        if rng.random() < 0.6 else shake_kernel(rng, rng.uniform(1, 3))


KERNEL_FAMILIES: dict[str, Callable[[Rng], np.ndarray]] = {
    "shake": random_shake, "gaussian": random_gaussian, "defocus": random_defocus,
    "composite": random_composite, "mild": random_mild, "identity": lambda rng: identity_kernel(),
}
# The share of each family in the uniform-blur stream; mild and identity pairs keep sharp input sharp.
UNIFORM_MIX = {"shake": 0.5, "composite": 0.15, "gaussian": 0.07, "defocus": 0.08, "mild": 0.12, "identity": 0.08}
NEARLY_SHARP = ("mild", "identity")  # families whose target keeps the input's grain with ``grain_targets``
# Blur only (no mild or identity pairs): the evaluation sets' mix; sharp input is measured on its own.
BLUR_MIX = {"shake": 0.6, "composite": 0.2, "gaussian": 0.1, "defocus": 0.1}


def check_mix(mix: object) -> None:
    """Refuse a kernel mix ``random_kernel`` cannot draw from: one line naming what is wrong."""
    unknown = sorted(set(mix) - set(KERNEL_FAMILIES)) if isinstance(mix, dict) else []
    shares = list(mix.values()) if isinstance(mix, dict) else []
    valid = all(isinstance(v, (int, float)) and np.isfinite(v) and v >= 0 for v in shares)
    if not shares or unknown or not valid or sum(shares) <= 0:
        raise ValueError(f"kernel_mix ({mix}) maps kernel families ({', '.join(KERNEL_FAMILIES)}) to shares "
                         f">= 0, not all 0{'; unknown: ' + ', '.join(unknown) if unknown else ''}")


def random_kernel(rng: Rng, mix: dict[str, float] = UNIFORM_MIX) -> tuple[str, np.ndarray]:
    """(family, kernel) drawn from ``mix``."""
    names = list(mix)
    p = np.array([mix[n] for n in names], float)
    name = names[int(rng.choice(len(names), p=p / p.sum()))]
    return name, KERNEL_FAMILIES[name](rng)


# --- camera model -----------------------------------------------------------------------------------


def to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.power(np.clip(srgb, 0, 1), GAMMA, dtype=np.float32)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    return np.power(np.clip(linear, 0, 1), 1 / GAMMA, dtype=np.float32)


def lift_highlights(linear: np.ndarray, rng: Rng, threshold: float = 0.92, gain: tuple[float, float] = (1.5, 6)):
    """Light sources are brighter than the sensor's clipping point: scale up near-white pixels (RSBlur) so that
    after blurring they stay saturated and smear as real ones do."""
    lum = linear.max(-1, keepdims=True)
    mask = lum > threshold ** GAMMA
    if not mask.any():
        return linear
    return np.where(mask, linear * rng.uniform(*gain), linear).astype(np.float32)


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel ('valid' where the caller padded; same size otherwise, reflected borders)."""
    if kernel.size == 1:
        return image.astype(np.float32, copy=True)
    p = kernel.shape[0] // 2
    padded = np.pad(image, ((p, p), (p, p), (0, 0)), mode="reflect")
    return np.stack([signal.fftconvolve(padded[..., c], kernel, mode="valid") for c in range(image.shape[2])],
                    -1).astype(np.float32)


def sensor_noise(linear: np.ndarray, rng: Rng, shot: float, read: float) -> np.ndarray:
    """Heteroscedastic Gaussian approximation of shot (variance ∝ signal) and read noise, in linear light."""
    sigma = np.sqrt(np.clip(linear, 0, None) * shot**2 + read**2)
    return np.clip(linear + rng.normal(size=linear.shape).astype(np.float32) * sigma, 0, 1).astype(np.float32)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip in memory: blocking, ringing and 8-bit quantisation."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255


def camera(linear_blurred: np.ndarray, rng: Rng, clean: bool = False) -> np.ndarray:
    """Clip at the sensor's white point, add noise (most of the time), return to sRGB, often as a JPEG."""
    x = np.clip(linear_blurred, 0, 1)
    if clean:
        return to_srgb(x)
    if rng.random() < 0.8:
        x = sensor_noise(x, rng, shot=rng.uniform(0, 0.03), read=rng.uniform(0, 0.004))
    x = to_srgb(x)
    if rng.random() < 0.5:
        x = jpeg(x, int(rng.integers(60, 96)))
    return x


def as_saved(image: np.ndarray) -> np.ndarray:
    """``image`` in [0, 1] as an 8-bit file would give it back (float32): what the plugin's user has."""
    return (np.round(np.clip(image, 0, 1) * 255) / 255).astype(np.float32)


def same_camera(rng: Rng) -> Callable[[np.ndarray], np.ndarray]:
    """``camera`` with its draws fixed: pictures of one size it records get the same noise pattern and JPEG
    quality, so a sharp picture and a slightly blurred copy of it come out with the same grain."""
    seed = int(rng.integers(2**63))
    return lambda linear: camera(linear, np.random.default_rng(seed))


def degrade_pair(sharp_padded: np.ndarray, kernel: np.ndarray, rng: Rng, pad: int,
                 keep_grain: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(blurry, sharp) from a sharp sRGB crop with ``pad`` px of real content around the patch on each side.

    With ``keep_grain`` the target is recorded by the same camera, with the same noise and JPEG: the network
    learns to undo the blur and keep the grain (sharp input comes back as it was) rather than denoise. Otherwise
    the target is the clean crop, clipped at white where its highlights were lifted (the sharp scene as a camera
    records it: a white light stays white, it does not come back grey); identity pairs are then exact half of
    the time (input = target).
    """
    crop = (slice(pad, sharp_padded.shape[0] - pad), slice(pad, sharp_padded.shape[1] - pad))
    sharp = np.ascontiguousarray(sharp_padded[crop], dtype=np.float32)
    if not keep_grain and kernel.size == 1 and rng.random() < 0.5:
        return sharp.copy(), sharp
    lifted = rng.random() < 0.5
    linear = lift_highlights(to_linear(sharp_padded), rng) if lifted else to_linear(sharp_padded)
    blurred = blur(linear, kernel)[crop]
    if keep_grain:
        record = same_camera(rng)
        return record(blurred), record(linear[crop])
    return camera(blurred, rng), to_srgb(linear[crop]) if lifted else sharp


# --- a user's blur, from their own pairs ------------------------------------------------------------------
def estimate_kernel(pairs, size: int = 41, eps: float = 1e-3) -> np.ndarray:
    """The one blur kernel that best maps the sharp images of ``pairs`` onto the blurry ones (least squares in
    the Fourier domain over all pairs and channels, Tikhonov ``eps``), cut to ``size`` px, non-negative, sum 1.

    Every pair is cut to one centre square and tapered by a Hann window, so image borders do not wrap around.
    Fine-tuning uses it to re-blur more sharp content with the user's blur (``datasets.ReblurSampler``).
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no pairs to estimate a blur kernel from")
    n = min(256, *(min(s.shape[:2]) for _, s in pairs))
    window = np.outer(np.hanning(n), np.hanning(n))[..., None]
    num = den = 0.0
    for b, s in pairs:
        y0, x0 = (s.shape[0] - n) // 2, (s.shape[1] - n) // 2
        crop = (slice(y0, y0 + n), slice(x0, x0 + n))
        fs, fb = (np.fft.rfft2((np.asarray(a[crop][..., :3], np.float64) - np.mean(a[crop])) * window, axes=(0, 1))
                  for a in (s, b))
        num = num + np.sum(np.conj(fs) * fb, axis=-1)
        den = den + np.sum(np.abs(fs) ** 2, axis=-1)
    k = np.fft.fftshift(np.fft.irfft2(num / (den + eps * np.mean(den)), s=(n, n)))
    half = min(size // 2, n // 2 - 1)
    c = n // 2
    k = np.clip(k[c - half:c + half + 1, c - half:c + half + 1], 0, None)
    k[k < 0.05 * k.max()] = 0  # the estimate's noise floor, spread over the whole support, is not blur
    return (k / k.sum()).astype(np.float32)


def jitter_kernel(kernel: np.ndarray, rng: Rng, scale: float = 0.1, angle_deg: float = 5.0) -> np.ndarray:
    """``kernel`` slightly resized and rotated (the same blur a few percent off, as hand shake varies)."""
    k = ndimage.rotate(kernel, rng.uniform(-angle_deg, angle_deg), reshape=False, order=1)
    k = ndimage.zoom(k, rng.uniform(1 - scale, 1 + scale), order=1)
    k = np.clip(k, 0, None)
    if k.shape[0] % 2 == 0:
        k = np.pad(k, ((0, 1), (0, 1)))
    return (k / max(k.sum(), 1e-8)).astype(np.float32)


def residual_noise(pairs, kernel: np.ndarray) -> float:
    """Noise level of the blurry images beyond ``kernel`` (robust std of blurry - kernel * sharp)."""
    res = [np.asarray(b, np.float32)[8:-8, 8:-8] - blur(np.asarray(s, np.float32), kernel)[8:-8, 8:-8]
           for b, s in pairs]
    flat = np.concatenate([r.ravel() for r in res])
    return float(1.4826 * np.median(np.abs(flat - np.median(flat))))
