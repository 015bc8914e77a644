"""Sample data: synthesized blurry scenes with their sharp references, opened through the manifest."""
from __future__ import annotations

import numpy as np
import pytest

from napari_gldeblur._sample_data import dynamic_scene, global_blur


@pytest.mark.parametrize("make", [dynamic_scene, global_blur])
def test_sample_is_a_blurry_sharp_pair(make):
    (sharp, sharp_meta, kind1), (blur, blur_meta, kind2) = make()
    assert kind1 == kind2 == "image" and sharp_meta["rgb"] and blur_meta["rgb"]
    assert "blurry" in blur_meta["name"] and "sharp" in sharp_meta["name"]
    assert blur.shape == sharp.shape and blur.ndim == 3 and blur.shape[-1] == 3 and blur.dtype == np.uint8
    # blur removes detail: less gradient energy than the reference (much less when the whole frame is blurred)
    energy = [np.abs(np.diff(im.astype(np.float32), axis=1)).mean() for im in (blur, sharp)]
    assert energy[0] < (0.99 if make is dynamic_scene else 0.8) * energy[1]
    np.testing.assert_array_equal(make()[1][0], blur)  # seeded: the same on every call


def test_dynamic_blur_is_not_uniform():
    """The moving objects blur much more than the background: a dynamic scene, not one global kernel."""
    (sharp, _, _), (blur, _, _) = dynamic_scene()
    diff = np.abs(blur.astype(np.float32) - sharp.astype(np.float32)).mean(-1)
    assert np.percentile(diff, 99) > 4 * np.median(diff)


@pytest.mark.napari
def test_samples_open_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    for key in ("dynamic_scene", "global_blur"):
        viewer.open_sample("napari-gldeblur", key)
    names = [lyr.name for lyr in viewer.layers]
    assert names == ["sharp reference (moving object)", "blurry scene (moving object)",
                     "sharp reference (camera shake)", "blurry scene (camera shake)"]
    assert all(lyr.rgb for lyr in viewer.layers)
