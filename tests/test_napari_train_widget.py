"""The Fine-tune (training) dock widget in a real napari viewer (run under Xvfb: xvfb-run -a pytest)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_gldeblur import _train_widget, finetune  # noqa: E402
from napari_gldeblur._events import models_changed  # noqa: E402
from napari_gldeblur._train_widget import (  # noqa: E402
    FILE,
    TrainWidget,
    check_layer_pair,
)
from napari_gldeblur._widget import user_models_dir  # noqa: E402

pytestmark = pytest.mark.napari
WIDGET = "Fine-tune (train on your pairs)"


@pytest.fixture
def notes(monkeypatch) -> dict[str, list[str]]:
    """Capture the widget's notifications by level."""
    seen: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    for level in seen:
        monkeypatch.setattr(_train_widget, f"show_{level}", seen[level].append)
    return seen


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-gldeblur", WIDGET)
    return viewer, widget


def blurry_sharp(seed: int, shape=(48, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random RGB scene and its horizontally motion-blurred copy, float32 in [0, 1]."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    sharp = ndimage.gaussian_filter(rng.random((*shape, 3)), (1.2, 1.2, 0))
    sharp = ((sharp - sharp.min()) / (sharp.max() - sharp.min())).astype(np.float32)
    return ndimage.uniform_filter(sharp, (1, 7, 1)).astype(np.float32), sharp


def add_two_pairs(viewer) -> list:
    """Two tiny layer pairs in different dtypes: 8-bit RGB, and a 2-frame 16-bit gray stack (3 pairs in all)."""
    b1, s1 = blurry_sharp(0)
    lb1 = viewer.add_image((b1 * 255).round().astype(np.uint8), name="blurry A", rgb=True)
    ls1 = viewer.add_image((s1 * 255).round().astype(np.uint8), name="sharp A", rgb=True)
    frames = [blurry_sharp(seed) for seed in (1, 2)]
    lb2 = viewer.add_image(np.stack([(b.mean(-1) * 65535).astype(np.uint16) for b, _ in frames]), name="blurry B")
    ls2 = viewer.add_image(np.stack([(s.mean(-1) * 65535).astype(np.uint16) for _, s in frames]), name="sharp B")
    return [(lb1, ls1), (lb2, ls2)]


def configure(widget: TrainWidget, checkpoint: Path, steps: int, lr: float = 3e-3) -> None:
    widget.start_model.value = FILE
    widget.checkpoint.value = checkpoint
    widget.steps.value = steps
    widget.lr.value = lr
    widget.batch.value = 2
    widget.val_split.value = 0.34  # 3 pairs: 2 train, 1 validation
    widget.device.value = "cpu"


def wait(qtbot, widget: TrainWidget, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def restoration_mse(checkpoint: str | Path, pairs: list) -> float:
    """Mean squared error of a model's restoration over (blur, sharp) pairs."""
    from napari_gldeblur.models import load_model
    from napari_gldeblur.training import restore

    net = load_model(str(checkpoint))
    return float(np.mean([np.mean((restore(net, b) - s) ** 2) for b, s in pairs]))


# --- Qt-free helpers ------------------------------------------------------------------------------
def test_check_layer_pair_counts_stack_frames_and_names_mismatched_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    b = viewer.add_image(np.zeros((3, 20, 24), np.uint8), name="b stack")
    s = viewer.add_image(np.zeros((3, 20, 24, 3), np.uint8), name="s stack", rgb=True)
    assert check_layer_pair(b, s) == 3  # gray vs RGB is fine: both become RGB
    odd = viewer.add_image(np.zeros((2, 20, 24), np.uint8), name="two frames")
    with pytest.raises(ValueError, match="'b stack' is 3 frames of 24x20.*'two frames' is 2 frames of 24x20"):
        check_layer_pair(b, odd)
    with pytest.raises(ValueError, match="both the blurry and the sharp"):
        check_layer_pair(b, b)


# --- the widget -----------------------------------------------------------------------------------
def test_widget_opens_from_manifest(viewer_widget):
    viewer, widget = viewer_widget
    assert isinstance(widget, TrainWidget)
    from napari_gldeblur.finetune import FINE_TUNE

    assert widget.phase.value == FINE_TUNE["phase"] == "end2end"  # the measured fine-tuning defaults (CLI too)
    assert (widget.lr.value, widget.batch.value, widget.loss.value) == (FINE_TUNE["lr"], FINE_TUNE["batch"], FINE_TUNE["loss"])
    assert Path(widget.save_path.value).parent == user_models_dir()
    viewer.add_image(np.zeros((20, 20), np.uint8), name="img")
    assert [c for c in widget.blurry.choices if c is not None][0].name == "img"  # lists new layers at once


def test_finetune_on_two_layer_pairs_lowers_loss_saves_and_announces(viewer_widget, qtbot, notes, make_checkpoint,
                                                                     tmp_path):
    viewer, widget = viewer_widget
    start = make_checkpoint(tmp_path / "start.pt")
    layer_pairs = add_two_pairs(viewer)
    for b, s in layer_pairs:
        assert widget.add_pair(b, s)
    assert len(widget.pair_list.choices) == 2
    configure(widget, start, steps=40)
    announced: list = []
    models_changed.connect(announced.append)
    try:
        widget.start_button.native.click()
        assert widget.worker is not None and widget.stop_button.enabled and not widget.start_button.enabled
        wait(qtbot, widget)
    finally:
        models_changed.disconnect(announced.append)
    assert notes["error"] == []
    assert any("Patch size reduced from 96 to 48" in n for n in notes["info"])  # images smaller than the patch
    outcome = widget.last_outcome
    assert outcome is not None and outcome.error is None and not outcome.stopped and outcome.steps == 40
    saved = Path(outcome.path)
    assert saved.parent == user_models_dir() and saved.is_file() and announced == [str(saved)]
    # live plot and progress bar followed every step; validation ran on the held-out pair
    assert len(widget.plot.loss) == 40 and len(widget.plot.psnr) >= 2
    assert widget.progress.value == widget.progress.max == 40
    assert widget.start_button.enabled and not widget.stop_button.enabled
    # the fine-tuned model restores the training pairs better than the model it started from
    from napari_gldeblur.models import read_checkpoint

    ckpt = read_checkpoint(saved)
    assert ckpt["train_config"]["loss"] == finetune.FINE_TUNE["loss"]  # the measured fine-tuning default, as the CLI
    assert ckpt["train_config"]["workers"] == 0  # never forks worker processes from the viewer
    history = [loss for _, _, loss, _ in ckpt["history"]]
    assert np.mean(history[-5:]) < np.mean(history[:5])
    assert all(v > 0 for _, v in widget.plot.loss)  # plotted as per-image MSE on the log scale
    pairs = finetune.pairs_from_arrays([(b.data, b.rgb, s.data, s.rgb) for b, s in layer_pairs])
    assert len(pairs) == 3
    assert restoration_mse(saved, pairs) < 0.9 * restoration_mse(start, pairs)
    assert ckpt["fine_tuned_from"] == str(start) and ckpt["optimizer"] is None
    # the next run gets a fresh default file name instead of overwriting this model, and may start from this one
    assert Path(widget.save_path.value) != saved and Path(widget.save_path.value).parent == user_models_dir()
    assert str(saved) in widget.start_model.choices


def test_finetune_from_a_gopro_layout_folder(viewer_widget, qtbot, notes, make_checkpoint, tmp_path):
    from napari_gldeblur.synthesis import write_pairs

    _, widget = viewer_widget
    for seq, seeds in (("SEQ_A", (0, 1)), ("SEQ_B", (2,))):
        write_pairs(tmp_path / "pairs" / seq, (blurry_sharp(seed, (40, 56)) for seed in seeds))
    widget.source.value = "folder"
    widget.folder.value = tmp_path / "pairs"
    configure(widget, make_checkpoint(tmp_path / "start.pt"), steps=6)
    widget.patch.value = 32
    widget.save_path.value = tmp_path / "elsewhere" / "mine"  # any path; '.pt' is added
    widget.start()
    wait(qtbot, widget)
    assert notes["error"] == [] and not any("Patch size" in n for n in notes["info"])
    assert widget.last_outcome.path == tmp_path / "elsewhere" / "mine.pt" and widget.last_outcome.path.is_file()
    assert widget.last_outcome.steps == 6 and len(widget.plot.psnr) >= 1  # 3 pairs: one validates


def test_saved_model_appears_in_deblur_widget_and_changes_its_output(viewer_widget, qtbot, notes, make_checkpoint,
                                                                     tmp_path):
    pytest.importorskip("napari_gldeblur.inference")
    viewer, widget = viewer_widget
    _, deblur = viewer.window.add_plugin_dock_widget("napari-gldeblur", "Deblur")
    start = make_checkpoint(tmp_path / "start.pt")
    (b1, s1), _ = add_two_pairs(viewer)
    deblur.add_model(start)
    deblur.add_features.value = False
    deblur.deblur(b1)
    qtbot.waitUntil(lambda: deblur.worker is None, timeout=60_000)
    before = viewer.layers["blurry A deblurred"].data.copy()

    widget.blurry.value, widget.sharp.value = b1, s1  # empty list: the chosen layers are the pair
    configure(widget, start, steps=30)
    widget.val_split.value = 0.0
    widget.save_path.value = tmp_path / "my models" / "mine.pt"  # outside the user models folder
    widget.start()
    wait(qtbot, widget)
    assert notes["error"] == [], notes["error"]
    saved = str(widget.last_outcome.path)
    assert Path(saved).parent != user_models_dir()
    assert saved in [v for v in deblur.model.choices]  # listed at once, without reopening the widget
    deblur.model.value = saved
    deblur.deblur(b1)
    qtbot.waitUntil(lambda: deblur.worker is None, timeout=60_000)
    after = viewer.layers["blurry A deblurred"].data
    assert after.shape == before.shape
    assert np.abs(after.astype(float) - before.astype(float)).mean() > 0.5  # 8-bit levels


def test_stop_ends_training_mid_run_and_keeps_a_model(viewer_widget, qtbot, notes, make_checkpoint, tmp_path):
    viewer, widget = viewer_widget
    for b, s in add_two_pairs(viewer):
        widget.add_pair(b, s)
    configure(widget, make_checkpoint(tmp_path / "start.pt"), steps=100_000)
    widget.loss.value = "mse"  # the paper's loss
    widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.loss) >= 3, timeout=60_000)  # the viewer's event loop runs meanwhile
    widget.stop_button.native.click()
    wait(qtbot, widget, timeout=60_000)
    assert notes["error"] == []
    outcome = widget.last_outcome
    assert outcome.stopped and 3 <= outcome.steps < 100_000
    from napari_gldeblur.models import load_model, read_checkpoint

    assert read_checkpoint(outcome.path)["step"] == outcome.steps
    assert read_checkpoint(outcome.path)["train_config"]["loss"] == "mse"
    load_model(str(outcome.path))
    assert "stopped" in widget.status.value and widget.start_button.enabled


def test_mismatched_shapes_notify_naming_the_layers_before_starting(viewer_widget, notes):
    viewer, widget = viewer_widget
    b = viewer.add_image(np.zeros((48, 48, 3), np.uint8), name="my blurry", rgb=True)
    s = viewer.add_image(np.zeros((40, 48, 3), np.uint8), name="my sharp", rgb=True)
    widget.blurry.value, widget.sharp.value = b, s
    widget.add_button.native.click()
    assert widget.pairs == []
    widget.start_button.native.click()
    assert widget.worker is None and widget.start_button.enabled
    assert len(notes["error"]) == 2
    for message in notes["error"]:
        assert "'my blurry'" in message and "'my sharp'" in message and "\n" not in message


def test_empty_selections_and_bad_inputs_notify(viewer_widget, notes, tmp_path, qtbot):
    viewer, widget = viewer_widget
    widget.start()  # no layers at all
    widget.make_pairs()  # no sharp image for synthesis
    widget.source.value = "folder"
    widget.start()  # no folder
    (tmp_path / "empty").mkdir()
    widget.folder.value = tmp_path / "empty"
    widget.start()  # folder without pairs
    widget.source.value = "layers"
    b, s = blurry_sharp(0)
    widget.blurry.value = viewer.add_image(b, name="b", rgb=True)
    widget.sharp.value = viewer.add_image(s, name="s", rgb=True)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    widget.start_model.value = FILE
    widget.checkpoint.value = bad
    widget.start()  # corrupt checkpoint
    assert widget.worker is None
    errors = notes["error"]
    assert len(errors) == 5 and all("\n" not in e for e in errors)
    assert "No training pairs" in errors[0] and "No sharp image" in errors[1]
    assert "No training folder" in errors[2] and "no image pairs" in errors[3] and "bad.pt" in errors[4]
    assert not widget.layer_box.native.isHidden() and widget.folder_box.native.isHidden()
    assert widget.start_button.enabled


def test_exception_in_the_worker_becomes_a_notification(viewer_widget, qtbot, notes, tmp_path):
    from napari_gldeblur.models import write_checkpoint
    from napari_gldeblur.network import DBAFNet, NetConfig

    viewer, widget = viewer_widget
    config = NetConfig(width=4, blocks=1, variant="LB")
    lb = write_checkpoint(tmp_path / "lb.pt", {"config": config.as_dict(), "model": DBAFNet(config).state_dict()})
    b, s = blurry_sharp(0)
    widget.add_pair(viewer.add_image(b, name="b", rgb=True), viewer.add_image(s, name="s", rgb=True))
    configure(widget, lb, steps=5)
    widget.phase.value = "global"  # LB-Net has no global branch: training.train raises in the worker
    assert widget.start() is not None
    wait(qtbot, widget)
    assert len(notes["error"]) == 1 and "no global branch" in notes["error"][0]
    assert widget.start_button.enabled and widget.last_outcome.path is None
    assert not user_models_dir().is_dir() or not list(user_models_dir().glob("*.pt"))  # nothing half-saved


def test_make_pairs_from_a_sharp_image_adds_a_listed_pair(viewer_widget, qtbot, notes):
    from skimage import data

    viewer, widget = viewer_widget
    sharp = viewer.add_image(data.camera()[::4, ::4], name="reference")  # 128x128 gray 8-bit
    widget.synth_layer.value = sharp
    widget.synth_kind.value = "dynamic"
    widget.synth_count.value = 3
    widget.synth_size.value = 32
    widget.synth_button.native.click()
    qtbot.waitUntil(lambda: widget.synth_worker is None, timeout=60_000)
    assert notes["error"] == []
    blurry = viewer.layers["reference synthetic blurry (dynamic)"]
    made_sharp = viewer.layers["reference synthetic sharp (dynamic)"]
    assert blurry.data.shape == made_sharp.data.shape == (3, 32, 32, 3) and blurry.rgb
    assert widget.pairs == [(blurry, made_sharp)]
    widget.viewer.add_image(np.zeros((8, 8)), name="unrelated")  # the widget sees layers through napari's proxies
    assert widget.pairs == [(blurry, made_sharp)] and len(widget.pair_list.choices) == 1
    viewer.layers.remove(made_sharp)
    assert widget.pairs == [] and len(widget.pair_list.choices) == 0
    assert not np.allclose(blurry.data, made_sharp.data)  # really blurred
    assert check_layer_pair(blurry, made_sharp) == 3


def test_preview_shows_the_current_weights_on_a_crop_of_the_blurry_layer(viewer_widget, qtbot, notes,
                                                                          make_checkpoint, tmp_path):
    viewer, widget = viewer_widget
    (b1, s1), _ = add_two_pairs(viewer)
    widget.blurry.value, widget.sharp.value = b1, s1
    configure(widget, make_checkpoint(tmp_path / "start.pt"), steps=10)
    widget.preview.value = True
    assert not widget.preview_layer.native.isHidden() and widget.preview_layer.value is b1
    widget.preview_every.value = 4
    seen: list[int] = []
    widget.start()
    qtbot.waitUntil(lambda: "blurry A preview" in viewer.layers, timeout=60_000)
    preview = viewer.layers["blurry A preview"]
    preview.events.data.connect(lambda e: seen.append(preview.metadata["napari_gldeblur"]["step"]))
    seen.append(preview.metadata["napari_gldeblur"]["step"])
    wait(qtbot, widget)
    assert notes["error"] == []
    assert preview.data.shape == (48, 48, 3) and preview.rgb and 0 <= preview.data.min() and preview.data.max() <= 1
    assert seen[0] == 4 and seen[-1] == 10  # every 4 steps, then the final weights
    assert preview not in [c for c in widget.blurry.choices]  # never offered as training data


def test_status_reports_the_gain_over_the_starting_model(viewer_widget, qtbot, notes, make_checkpoint, tmp_path):
    """During and after a run the status says the held-out gain against the model it started from, and the
    plot holds that model's level (the dashed line)."""
    viewer, widget = viewer_widget
    start = make_checkpoint(tmp_path / "start.pt")
    for b, s in add_two_pairs(viewer):
        widget.add_pair(b, s)
    configure(widget, start, steps=10)
    seen, shown = [], widget._on_progress

    def spy(progress):
        shown(progress)
        seen.append(widget.status.value)

    widget._on_progress = spy
    widget.start_button.native.click()
    wait(qtbot, widget)
    assert notes["error"] == []
    assert widget.plot.start is not None
    assert any("vs start)" in text and "step" in text for text in seen), seen[-3:]
    assert "vs start)" in widget.status.value and widget.status.value.startswith("done")


def test_the_plot_legend_shortens_the_loss_name_to_fit_beside_the_psnr_legend():
    from napari_gldeblur._plot import legend_label

    def width(text: str) -> float:
        return 7.0 * len(text)  # a fixed-pitch font of 7 px per character

    assert legend_label(width, 400) == "training loss (log scale)"
    assert legend_label(width, 7 * len("loss (log scale)")) == "loss (log scale)"
    assert legend_label(width, 50) == "loss (log)"
