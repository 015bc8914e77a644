"""The Deblur dock widget in a real napari viewer (run under Xvfb: xvfb-run -a pytest)."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_gldeblur import _widget  # noqa: E402
from napari_gldeblur._events import models_changed  # noqa: E402
from napari_gldeblur._widget import BROWSE, DeblurWidget, describe_error, user_models_dir  # noqa: E402

pytestmark = pytest.mark.napari
ROLES = ("deblurred", "local features", "global features", "attention mask")


@pytest.fixture
def notes(monkeypatch) -> dict[str, list[str]]:
    """Capture the widget's notifications by level."""
    seen: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    for level in seen:
        monkeypatch.setattr(_widget, f"show_{level}", seen[level].append)
    return seen


@pytest.fixture
def viewer_widget(make_napari_viewer, tiny_checkpoint):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-gldeblur", "Deblur")
    widget.add_model(tiny_checkpoint)
    return viewer, widget


def run(qtbot, widget: DeblurWidget, layer=None) -> None:
    """Click Deblur (or start on ``layer``) and wait until the worker has finished."""
    if layer is None:
        widget.run_button.native.click()
    else:
        widget.deblur(layer)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)


def outputs(viewer, name: str) -> list:
    return [viewer.layers[f"{name} {r}"] for r in ROLES if f"{name} {r}" in viewer.layers]


def test_widget_opens_from_manifest_and_sits_in_filter_menu(make_napari_viewer):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-gldeblur", "Deblur")
    assert isinstance(widget, DeblurWidget)
    filter_menu = get_app_model().menus.get_menu("napari/layers/filter")
    assert "napari-gldeblur.deblur_widget" in [getattr(item, "command", None) and item.command.id for item in filter_menu]


def test_deblur_rgb_adds_four_layers_with_source_geometry(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    rng = np.random.default_rng(0)
    src = viewer.add_image(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8), name="photo",
                           scale=(2.0, 3.0), translate=(5.0, -4.0))
    widget.layer.value = src
    widget.tile.value = 128  # 2 x 2 overlapping tiles
    assert widget.run_button.enabled
    run(qtbot, widget)
    assert notes["error"] == []
    out = outputs(viewer, "photo")
    assert [lyr.name for lyr in out] == [f"photo {r}" for r in ROLES]
    deblurred, *features = out
    assert deblurred.data.shape == (150, 200, 3) and deblurred.data.dtype == np.uint8 and deblurred.rgb
    assert deblurred.contrast_limits == src.contrast_limits
    for lyr in features:
        assert lyr.data.shape == (150, 200) and lyr.data.dtype == np.float32 and not lyr.rgb
        assert 0.0 <= lyr.data.min() and lyr.data.max() <= 1.0
        assert lyr.contrast_limits_range == [0.0, 1.0] and lyr.opacity < 1 and not lyr.visible
        lo, hi = lyr.contrast_limits
        assert 0.0 <= lo < hi <= 1.0
        assert (lyr.data <= lo).mean() < 0.02 and (lyr.data >= hi).mean() < 0.02  # robust stretch, not clipping
    assert viewer.layers.selection.active is deblurred
    assert len({lyr.colormap.name for lyr in features}) == 3
    for lyr in out:
        np.testing.assert_allclose(lyr.scale, src.scale)
        np.testing.assert_allclose(lyr.translate, src.translate)
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert widget.progress.value == widget.progress.max == 4  # one step per tile
    assert "1 image" in widget.status.value and "tiles 128x128" in widget.status.value
    assert widget.layer.value is src  # the chooser does not jump to the new layers


def test_rerun_replaces_outputs_in_place(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    src = viewer.add_image(np.random.default_rng(1).random((24, 30), dtype=np.float32), name="cells")
    run(qtbot, widget, src)
    first = outputs(viewer, "cells")
    src.data = np.random.default_rng(2).random((24, 30), dtype=np.float32)
    run(qtbot, widget, src)
    second = outputs(viewer, "cells")
    assert len(viewer.layers) == 5 and [id(x) for x in first] == [id(x) for x in second]
    assert second[0].data.dtype == np.float32
    assert notes["error"] == []


def test_rerun_after_renaming_source_and_adding_layers_updates_the_same_outputs(viewer_widget, qtbot, notes):
    """Outputs are found by the source's unique id, not its name nor proxy identity (napari hands the widget proxies)."""
    viewer, widget = viewer_widget
    src = viewer.add_image(np.random.default_rng(1).random((24, 30), dtype=np.float32), name="cells")
    run(qtbot, widget, widget.viewer.layers["cells"])  # a plugin-side proxy, as napari's own callbacks pass
    first = outputs(viewer, "cells")
    first[1].visible = True  # the user shows one feature map
    viewer.add_image(np.zeros((24, 30), np.float32), name="other")
    src.name = "cells (renamed)"
    widget.layer.value = widget.viewer.layers["cells (renamed)"]
    run(qtbot, widget)
    second = outputs(viewer, "cells (renamed)")
    assert len(viewer.layers) == 6 and outputs(viewer, "cells") == []  # no pile-up of stale outputs
    assert all(a is b for a, b in zip(first, second, strict=True))  # the same layers, renamed and updated
    assert second[1].visible and not second[2].visible
    widget.add_features.value = False
    run(qtbot, widget)  # stale maps of this source are dropped, whatever their name
    assert [lyr.name for lyr in viewer.layers] == ["cells (renamed)", "cells (renamed) deblurred", "other"]
    assert notes["error"] == []


def test_a_same_named_layer_that_is_not_ours_is_never_overwritten(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    mine = np.full((16, 16), 7, np.uint8)
    theirs = viewer.add_image(mine.copy(), name="img deblurred")  # e.g. deblurred with another tool
    src = viewer.add_image(np.zeros((16, 16), np.uint8), name="img")
    widget.add_features.value = False
    run(qtbot, widget, src)
    np.testing.assert_array_equal(theirs.data, mine)
    ours = [lyr for lyr in viewer.layers if lyr.metadata.get(_widget.META_KEY, {}).get("role") == "image"]
    assert len(ours) == 1 and ours[0] is not theirs and ours[0].name.startswith("img deblurred")
    run(qtbot, widget, src)  # and a rerun updates ours, not theirs
    assert len(viewer.layers) == 3
    np.testing.assert_array_equal(theirs.data, mine)


def test_uint16_stack_is_processed_frame_by_frame(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    stack = np.random.default_rng(3).integers(0, 4096, (3, 20, 28), dtype=np.uint16)
    src = viewer.add_image(stack, name="stack", scale=(1.0, 0.5, 0.5), contrast_limits=(0, 4095))
    progress = []
    worker = widget.deblur(src)
    worker.yielded.connect(progress.append)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert notes["error"] == []
    deblurred, *features = outputs(viewer, "stack")
    assert deblurred.data.shape == stack.shape and deblurred.data.dtype == np.uint16
    assert tuple(deblurred.contrast_limits) == (0, 4095)
    assert all(f.data.shape == stack.shape and f.data.dtype == np.float32 for f in features)
    assert progress[-1][0] == progress[-1][1] and progress[-1][1] >= 3  # at least one step per frame
    assert not np.array_equal(deblurred.data[0], deblurred.data[1])  # each frame is its own result


def test_cancel_stops_between_tiles_without_adding_layers(viewer_widget, qtbot, notes, monkeypatch):
    viewer, widget = viewer_widget
    real = _widget.make_deblurrer

    class Slowed:  # the real engine, 0.1 s per step, so the click lands long before the last frame
        def __init__(self, inner):
            self.inner = inner

        def steps(self, *args, **kwargs):
            for item in self.inner.steps(*args, **kwargs):
                time.sleep(0.1)
                yield item

    monkeypatch.setattr(_widget, "make_deblurrer", lambda *args: Slowed(real(*args)))
    src = viewer.add_image(np.zeros((8, 64, 64), np.uint8), name="long")  # 8 frames, one tile each
    steps = []
    worker = widget.deblur(src)
    assert not widget.run_button.enabled and widget.cancel_button.enabled

    def cancel_after_first_tile(progress):
        steps.append(progress)
        if len(steps) == 1:
            widget.cancel_button.native.click()

    worker.yielded.connect(cancel_after_first_tile)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert worker.abort_requested and 1 <= len(steps) < 8 and steps[-1][1] == 8
    assert outputs(viewer, "long") == [] and len(viewer.layers) == 1
    assert notes["info"] == ["Deblurring cancelled."] and notes["error"] == []
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    run(qtbot, widget, src)  # still usable
    assert len(outputs(viewer, "long")) == 4


def test_no_image_and_labels_layer_are_notifications(viewer_widget, notes):
    viewer, widget = viewer_widget
    widget.run_button.native.click()
    assert widget.worker is None and "No image layer" in notes["error"][-1]
    labels = viewer.add_labels(np.zeros((8, 8), np.int32), name="masks")
    assert widget.layer.choices == ()  # labels are not offered
    assert widget.deblur(labels) is None
    assert notes["error"][-1] == "'masks' is a Labels layer: deblurring needs an Image layer."
    assert "\n" not in "".join(notes["error"])


def test_bad_checkpoint_is_one_line_error_and_widget_stays_usable(viewer_widget, qtbot, notes, tmp_path,
                                                                 tiny_checkpoint):
    viewer, widget = viewer_widget
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    src = viewer.add_image(np.zeros((16, 16), np.uint8), name="img")
    widget.add_model(bad)
    run(qtbot, widget, src)
    assert len(notes["error"]) == 1 and "broken.pt" in notes["error"][0] and "\n" not in notes["error"][0]
    assert outputs(viewer, "img") == [] and widget.run_button.enabled
    widget.model.value = str(tiny_checkpoint)
    run(qtbot, widget, src)
    assert len(outputs(viewer, "img")) == 4 and len(notes["error"]) == 1


def test_out_of_memory_in_worker_is_a_notification(viewer_widget, qtbot, notes, monkeypatch):
    viewer, widget = viewer_widget

    def exhausted(*_args):
        raise MemoryError("Unable to allocate 12.0 GiB")

    monkeypatch.setattr(_widget, "make_deblurrer", exhausted)
    run(qtbot, widget, viewer.add_image(np.zeros((16, 16), np.uint8), name="img"))
    assert notes["error"] == ["Out of memory while deblurring: choose a smaller tile size (e.g. 256) or the CPU device."]
    assert widget.run_button.enabled


def test_describe_error_is_one_line():
    class OutOfMemoryError(RuntimeError):
        pass

    assert describe_error(OutOfMemoryError("CUDA out of memory.\nTried to allocate")).startswith("Out of memory")
    assert describe_error(ValueError("checkpoint not found: x.pt\nmore")) == "checkpoint not found: x.pt"
    assert describe_error(KeyError("boom")) == "Deblurring failed: KeyError: 'boom'"


def test_layer_chooser_follows_layer_list(viewer_widget):
    viewer, widget = viewer_widget
    a = viewer.add_image(np.zeros((8, 8)), name="a")
    viewer.add_points(np.zeros((1, 2)))
    b = viewer.add_image(np.zeros((8, 8)), name="b")
    assert [c for c in widget.layer.choices] == [a, b]
    a.name = "renamed"
    assert [widget.layer.native.itemText(i) for i in range(widget.layer.native.count())] == ["renamed", "b"]
    viewer.layers.remove(a)
    assert list(widget.layer.choices) == [b]


def test_model_chooser_lists_user_checkpoints_and_browse(viewer_widget, tmp_path, make_checkpoint):
    viewer, widget = viewer_widget
    saved = make_checkpoint(user_models_dir() / "my-model.pt")
    assert str(saved) not in widget.model.choices
    models_changed.emit(saved)  # what the training widget does after saving
    assert str(saved) in widget.model.choices and widget.model.choices[-1] == BROWSE
    previous = widget.model.value
    widget._ask_checkpoint = lambda: None  # dialog cancelled
    widget.model.value = BROWSE
    assert widget.model.value == previous
    other = make_checkpoint(tmp_path / "elsewhere" / "other.pt")
    widget._ask_checkpoint = lambda: str(other)
    widget.model.value = BROWSE
    assert widget.model.value == str(other)


def test_model_saved_outside_user_folder_is_offered_without_being_selected(viewer_widget, tmp_path, make_checkpoint):
    _, widget = viewer_widget
    chosen = widget.model.value
    saved = make_checkpoint(tmp_path / "custom place" / "fine-tuned.pt")
    models_changed.emit(str(saved))  # the training widget saved to a path the user picked
    assert str(saved.resolve()) in widget.model.choices and widget.model.choices[-1] == BROWSE
    assert widget.model.value == chosen
    label = widget.model.native.itemText(widget.model.choices.index(str(saved.resolve())))
    assert label == f"fine-tuned.pt ({saved.resolve().parent})"
    in_folder = make_checkpoint(user_models_dir() / "mine.pt")
    models_changed.emit(in_folder)  # a Path works too; a user-folder model is listed once
    assert [v for v in widget.model.choices if v != BROWSE and Path(v).name == "mine.pt"] == [str(in_folder)]
    n = len(widget.model.choices)
    models_changed.emit(str(saved))  # announced again: still listed once
    models_changed.emit(None)  # no path: just re-list
    assert len(widget.model.choices) == n and widget.model.value == chosen


def test_device_choices_show_availability(viewer_widget):
    _, widget = viewer_widget
    labels = [widget.device.native.itemText(i) for i in range(widget.device.native.count())]
    cuda = _widget.cuda_device_name()
    assert labels[0] == f"auto ({'CUDA' if cuda else 'CPU'})"
    assert labels[2] == (f"CUDA ({cuda})" if cuda else "CUDA (not available)")


def test_show_features_toggles_existing_feature_layers(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    src = viewer.add_image(np.zeros((16, 16), np.uint8), name="img")
    widget.layer.value = src
    run(qtbot, widget)
    features = outputs(viewer, "img")[1:]
    assert not any(f.visible for f in features)
    widget.show_features.value = True
    assert all(f.visible for f in features)


def test_strength_slider_reaches_the_engine(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    data = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    src = viewer.add_image(data, name="img")
    assert widget.auto_strength.value and not widget.strength.enabled  # auto strength by default
    widget.auto_strength.value = False
    assert widget.strength.enabled and widget.strength.value == 1.0
    widget.strength.value = 0.0
    run(qtbot, widget, src)
    assert not notes["error"]
    np.testing.assert_array_equal(viewer.layers["img deblurred"].data, data)  # strength 0: the input back
    assert "strength 0.00" in widget.status.value  # a weakened result says so


def test_auto_strength_reaches_the_engine_and_the_status(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    src = viewer.add_image(np.full((16, 16, 3), 128, np.uint8), name="flat")  # nothing to deblur
    run(qtbot, widget, src)
    assert not notes["error"]
    assert "auto strength" in widget.status.value  # the strength the engine chose is shown


def test_the_status_says_when_auto_strength_left_every_frame_unchanged():
    def status(strengths, strength="auto"):
        result = SimpleNamespace(seconds=0.5, device="cpu", precision="fp32", tile=None, strengths=strengths)
        return _widget.summarize(result, (2, 16, 16, 3), rgb=True, strength=strength)

    assert "untick auto strength" in status((0.0, 0.0))
    assert "untick" not in status((0.0, 1.0))  # one frame deblurred: the result is not the input
    assert "untick" not in status((0.0,), strength=0.0)  # the user asked for strength 0


def test_without_feature_layers_only_the_result_is_added(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    src = viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="img")
    widget.add_features.value = False
    run(qtbot, widget, src)
    assert [lyr.name for lyr in outputs(viewer, "img")] == ["img deblurred"]


def test_model_chooser_refreshes_when_shown(make_napari_viewer, make_checkpoint, qtbot):
    viewer = make_napari_viewer(show=True)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-gldeblur", "Deblur")
    qtbot.waitUntil(widget.native.isVisible)
    saved = make_checkpoint(user_models_dir() / "trained-elsewhere.pt")  # no signal: another process saved it
    assert str(saved) not in widget.model.choices
    dock.hide()
    dock.show()  # e.g. the user re-opens the dock from the Plugins or Layers > Filter menu
    qtbot.waitUntil(widget.native.isVisible)
    assert str(saved) in widget.model.choices
    assert widget.model.native.itemText(widget.model.choices.index(str(saved))) == "trained-elsewhere (your model)"


# --- users' data: channel axes, metadata, provenance, lazy stacks, folders ------------------------------
def test_channel_axis_is_offered_and_each_channel_is_deblurred_alone(viewer_widget, qtbot, notes):
    """A (C, Y, X) layer with channel axis 0 chosen: the result has the layer's shape and channel 1 equals
    channel 1 deblurred on its own."""
    viewer, widget = viewer_widget
    data = np.random.default_rng(9).random((2, 24, 28)).astype(np.float32)
    src = viewer.add_image(data, name="cells", axis_labels=("c", "y", "x"))
    widget.layer.value = src
    assert "c (axis 0, size 2)" in [widget.channel_axis.native.itemText(i) for i in range(widget.channel_axis.native.count())]
    widget.channel_axis.value = 0
    widget.auto_strength.value, widget.strength.value = False, 1.0
    run(qtbot, widget)
    assert notes["error"] == []
    out = viewer.layers["cells deblurred"].data
    alone = widget_engine(widget)(data[1], strength=1.0, features=False).image
    assert out.shape == data.shape
    np.testing.assert_allclose(out[1], alone, atol=1e-6)


def widget_engine(widget):
    return _widget.make_deblurrer(widget.model.value, widget.device.value, widget.tile.value)


def test_outputs_keep_units_axis_labels_metadata_and_record_provenance(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    src = viewer.add_image(np.random.default_rng(1).integers(0, 4096, (3, 20, 24), dtype=np.uint16), name="t",
                           scale=(2.0, 0.5, 0.5), units=("s", "um", "um"), axis_labels=("t", "y", "x"),
                           metadata={"objective": "40x"})
    run(qtbot, widget, src)
    assert notes["error"] == []
    for lyr in outputs(viewer, "t"):
        assert tuple(lyr.axis_labels) == ("t", "y", "x") and [str(u) for u in lyr.units] == ["second", "micrometer", "micrometer"]
        assert tuple(lyr.scale) == (2.0, 0.5, 0.5) and lyr.metadata["objective"] == "40x"
    prov = viewer.layers["t deblurred"].metadata["napari_gldeblur"]["provenance"]
    assert prov["model_sha256"] == widget_engine(widget).model["sha256"] and len(prov["strength"]) == 3


@pytest.mark.parametrize("kind", ["dask", "zarr"])
def test_a_lazy_stack_streams_into_a_memmap_and_maps_only_the_viewed_frame(viewer_widget, qtbot, notes,
                                                                        tmp_path, monkeypatch, kind):
    """A lazy (dask or zarr) layer is deblurred into a memory-mapped TIFF (not RAM); the feature layers are 2-D
    maps of the frame on view; the pixels equal the in-memory result."""
    monkeypatch.setattr(_widget, "results_dir", lambda: tmp_path / "results")
    viewer, widget = viewer_widget
    stack = np.random.default_rng(2).integers(0, 256, (4, 20, 24), dtype=np.uint8)
    if kind == "dask":
        lazy = pytest.importorskip("dask.array").from_array(stack, chunks=(1, 20, 24))
    else:
        lazy = pytest.importorskip("zarr").open_array(str(tmp_path / "s.zarr"), mode="w", shape=stack.shape,
                                                       chunks=(1, 20, 24), dtype=stack.dtype)
        lazy[:] = stack
    src = viewer.add_image(lazy, name="lazy")
    viewer.dims.set_current_step(0, 2)
    widget.auto_strength.value, widget.strength.value = False, 1.0
    run(qtbot, widget, src)
    assert notes["error"] == []
    deblurred, *features = outputs(viewer, "lazy")
    assert isinstance(deblurred.data, np.memmap) and Path(deblurred.data.filename).parent == tmp_path / "results"
    np.testing.assert_array_equal(np.asarray(deblurred.data), widget_engine(widget)(stack, strength=1.0, features=False).image)
    assert features and all(f.data.shape == (20, 24) for f in features)
    assert features[0].metadata["napari_gldeblur"]["frame"] == [2]
    from napari_gldeblur.imageio import read_description

    assert read_description(deblurred.data.filename) == deblurred.metadata["napari_gldeblur"]["provenance"]


def test_folder_mode_deblurs_every_file_and_a_bad_one_does_not_stop_it(viewer_widget, qtbot, notes, tmp_path):
    from napari_gldeblur.imageio import read_image_file, write_image_file

    viewer, widget = viewer_widget
    src, dst = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        write_image_file(src / f"f{i}.png", np.random.default_rng(i).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    (src / "broken.png").write_bytes(b"no png")
    widget.mode.value = "folder"
    assert not widget.input_folder.native.isHidden() and widget.layer.native.isHidden()
    widget.input_folder.value, widget.output_folder.value = src, dst
    progress = []
    widget.run_button.native.click()
    widget.worker.yielded.connect(progress.append)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert sorted(p.name for p in dst.iterdir()) == ["f0.png", "f1.png", "f2.png"]
    assert read_image_file(dst / "f0.png").shape == (20, 24, 3)
    assert "3 of 4 images" in widget.status.value and "1 failed" in widget.status.value and "broken.png" in widget.status.value
    assert progress[-1] == (4, 4)


def test_folder_mode_refuses_the_input_folder_as_output(viewer_widget, notes, tmp_path):
    viewer, widget = viewer_widget
    (tmp_path / "in").mkdir()
    assert widget.deblur_folder(tmp_path / "in", tmp_path / "in") is None
    assert "other than the input folder" in notes["error"][0]


def test_napari_channel_axis_layers_deblur_as_gray_layers(viewer_widget, qtbot, notes):
    """``add_image(..., channel_axis=0)`` makes one gray layer per channel: each deblurs to its own result."""
    viewer, widget = viewer_widget
    data = np.random.default_rng(4).integers(0, 4096, (2, 24, 28), dtype=np.uint16)
    first, second = viewer.add_image(data, channel_axis=0, name=["dapi", "gfp"])
    for layer in (first, second):
        run(qtbot, widget, layer)
    assert notes["error"] == []
    for name, channel in (("dapi", 0), ("gfp", 1)):
        out = viewer.layers[f"{name} deblurred"].data
        assert out.shape == (24, 28) and out.dtype == np.uint16
        np.testing.assert_array_equal(out, widget_engine(widget)(data[channel], features=False, strength="auto").image)
