"""The Qt-free core of fine-tuning (finetune.py): pairs from layer arrays, patch fitting, small helpers."""
from __future__ import annotations

import numpy as np
import pytest

from napari_gldeblur.finetune import crop_box, fit_patch, format_eta, layer_frames, next_free_path, split_counts


def test_layer_frames_turn_any_dtype_gray_or_rgb_into_float_rgb():
    rgb16 = np.full((2, 5, 6, 3), 65535, np.uint16)
    frames = layer_frames(rgb16, rgb=True)
    assert len(frames) == 2 and all(f.shape == (5, 6, 3) and f.dtype == np.float32 for f in frames)
    assert np.allclose(frames[0], 1.0)
    gray8 = np.arange(30, dtype=np.uint8).reshape(5, 6)
    (frame,) = layer_frames(gray8, rgb=False)
    assert frame.shape == (5, 6, 3) and np.allclose(frame[..., 0], frame[..., 2])
    assert np.isclose(frame[0, 1, 0], 1 / 255)


def test_fit_patch_clamps_to_the_smallest_image_or_refuses_tiny_ones():
    assert fit_patch([(64, 80), (100, 100)], 32) == (32, None)
    patch, note = fit_patch([(64, 80), (48, 100)], 96)
    assert patch == 48 and "96" in note and "100x48" in note
    with pytest.raises(ValueError, match="at least 16x16"):
        fit_patch([(12, 40)], 96)


def test_small_helpers():
    assert split_counts(3, 0.34) == (2, 1) and split_counts(2, 0.2) == (2, 0) and split_counts(1, 0.9) == (1, 0)
    assert format_eta(42) == "0:42" and format_eta(3723) == "1:02:03" and format_eta(float("nan")) == "?"
    assert crop_box(100, 50, (90.0, 25.0), size=40) == (60, 5, 100, 45)
    assert crop_box(30, 20, (15.0, 10.0), size=256) == (0, 0, 30, 20)


def test_next_free_path_never_overwrites(tmp_path):
    first = next_free_path(tmp_path)
    assert first.name == "finetuned-1.pt"
    first.write_bytes(b"x")
    assert next_free_path(tmp_path).name == "finetuned-2.pt"
