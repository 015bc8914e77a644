"""Measuring restorations: PSNR/SSIM over paired sets, and the classical baselines a napari user would try.

Baselines (scikit-image): Richardson-Lucy and unsupervised Wiener deconvolution with a *guessed*
Gaussian PSF (sigma ``GUESSED_SIGMA``; the true blur is unknown in practice), and unsharp masking.
All functions take and return float32 (H, W, 3) images in [0, 1].
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from .datasets import Pair, load_pairs
from .degradations import as_saved
from .synthesis import to_uint8

Restorer = Callable[[np.ndarray], np.ndarray]
GUESSED_SIGMA = 1.5  # px; a typical mild blur, used for every image


def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(ref, np.clip(out, 0, 1).astype(ref.dtype), data_range=1.0))


def ssim(out: np.ndarray, ref: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(ref, np.clip(out, 0, 1).astype(ref.dtype), data_range=1.0, channel_axis=-1))


def gaussian_psf(sigma: float = GUESSED_SIGMA) -> np.ndarray:
    r = np.arange(-int(3 * sigma + 1), int(3 * sigma + 1) + 1)
    g = np.exp(-0.5 * (r / sigma) ** 2)
    psf = np.outer(g, g)
    return psf / psf.sum()


def _per_channel(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, pad: int = 0) -> np.ndarray:
    """Apply a 2-D deconvolution to each channel; reflect-pad first so the borders do not ring."""
    h, w = image.shape[:2]
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([fn(padded[..., c]) for c in range(image.shape[-1])], -1)[pad : pad + h, pad : pad + w]
    return np.clip(out, 0, 1).astype(np.float32)


def richardson_lucy(image: np.ndarray, sigma: float = GUESSED_SIGMA, iterations: int = 10) -> np.ndarray:
    from skimage.restoration import richardson_lucy as rl

    psf = gaussian_psf(sigma)
    return _per_channel(lambda ch: rl(ch, psf, num_iter=iterations, clip=True), image, pad=2 * psf.shape[0])


def unsupervised_wiener(image: np.ndarray, sigma: float = GUESSED_SIGMA) -> np.ndarray:
    from skimage.restoration import unsupervised_wiener as uw

    psf = gaussian_psf(sigma)
    rng = np.random.default_rng(0)
    return _per_channel(lambda ch: uw(ch, psf, clip=True, rng=rng)[0], image, pad=2 * psf.shape[0])


def wiener_deconvolve(image: np.ndarray, kernel: np.ndarray, balance: float = 0.03) -> np.ndarray:
    """Classical Wiener filter for a known blur ``kernel`` (odd square, centred) with a constant noise-to-signal
    ``balance``: conj(K) Y / (|K|^2 + balance) per channel in the Fourier domain, on a mirror-padded image."""
    k = np.asarray(kernel, np.float64)
    pad = k.shape[0]

    def channel(ch: np.ndarray) -> np.ndarray:
        otf = np.zeros(ch.shape)
        otf[: k.shape[0], : k.shape[1]] = k
        otf = np.fft.rfft2(np.roll(otf, (-(k.shape[0] // 2), -(k.shape[1] // 2)), (0, 1)))
        return np.fft.irfft2(np.conj(otf) * np.fft.rfft2(ch) / (np.abs(otf) ** 2 + balance), ch.shape)

    return _per_channel(channel, image, pad=pad)


def unsharp_mask(image: np.ndarray, radius: float = 2.0, amount: float = 1.0) -> np.ndarray:
    """image + amount * (image - gaussian(image, radius)), clipped. Written out with ``skimage.filters.gaussian``
    because ``skimage.filters.unsharp_mask`` (0.26) returns different, wrong values from call to call."""
    from skimage.filters import gaussian

    img = image.astype(np.float64)
    out = img + amount * (img - gaussian(img, sigma=radius, channel_axis=-1, preserve_range=True))
    return np.clip(out, 0, 1).astype(np.float32)


def nearly_sharp(sharp: np.ndarray, sigma: float = 0.5) -> np.ndarray:
    """A barely blurred copy (Gaussian, ``sigma`` px), quantised to 8 bits like a saved photo: the input
    on which "do no harm" is measured (the output should stay within 0.5 dB of this input's PSNR)."""
    from skimage.filters import gaussian

    return as_saved(gaussian(sharp, sigma=sigma, channel_axis=-1, preserve_range=True))


BASELINES: dict[str, Restorer] = {
    "Richardson-Lucy (Gaussian PSF guess)": richardson_lucy,
    "Unsupervised Wiener (Gaussian PSF guess)": unsupervised_wiener,
    "Unsharp mask": unsharp_mask,
}


def model_restorer(model: str | os.PathLike = "lite", device: str = "auto", precision: str = "auto",
                   strength: float | str = 1.0) -> Restorer:
    """The user's path through the plugin: 8-bit image in, ``Deblurrer`` output (at ``strength``) back to float."""
    from .inference import Deblurrer

    d = Deblurrer(model=model, device=device, precision=precision)

    def restore(image: np.ndarray) -> np.ndarray:
        return d(to_uint8(image), strength=strength).image.astype(np.float32) / 255

    return restore


def evaluate(restore: Restorer | None, pairs: Sequence[Pair]) -> dict:
    """Mean PSNR/SSIM of the input and of ``restore(input)`` (``None``: input only) against the sharp images."""
    rows = []
    for blur, sharp in pairs:
        row = [psnr(blur, sharp), ssim(blur, sharp)]
        if restore is not None:
            out = restore(blur)
            row += [psnr(out, sharp), ssim(out, sharp)]
        rows.append(row)
    m = np.mean(rows, axis=0)
    res = {"n": len(pairs), "input_psnr": float(m[0]), "input_ssim": float(m[1])}
    if restore is not None:
        res |= {"output_psnr": float(m[2]), "output_ssim": float(m[3])}
    return res


def psnr_gains(restore: Restorer, pairs: Sequence[Pair]) -> list[float]:
    """Per pair, the PSNR gain (dB) of ``restore(input)`` over the input; on ``(nearly_sharp(s), s)`` pairs, the
    "do no harm" change."""
    return [psnr(restore(x), ref) - psnr(x, ref) for x, ref in pairs]


def evaluate_model(model: str | os.PathLike, roots: Sequence[str | os.PathLike], device: str = "auto") -> dict:
    return evaluate(model_restorer(model, device), load_pairs(roots))
