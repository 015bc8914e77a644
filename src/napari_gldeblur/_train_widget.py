"""The Fine-tune dock widget: adapt the deblurring network to your own (blurry, sharp) image pairs.

Pairs come from napari layers (a blurry layer and its sharp partner of the same shape; a stack gives one
pair per frame; several layer pairs can be listed) or from a folder (flat ``blur/`` + ``sharp/`` or the
GoPro layout ``SEQ/blur`` + ``SEQ/sharp``), or are synthesised from sharp images alone with the project's
blur synthesis. Training is ``training.train`` run in a napari thread worker: the widget only collects
the settings, draws the live loss / validation-PSNR plot and the progress bar, shows an optional preview
of the blurry layer deblurred with the current weights, and saves the checkpoint (default: the per-user
models folder), announcing it on ``_events.models_changed`` so the Deblur widget lists it at once.
Every failure becomes one napari notification with a one-line reason; the widget stays usable.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import napari.layers
import napari.viewer
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    RadioButtons,
    Select,
    SpinBox,
)
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QTabWidget

from ._events import models_changed
from ._plot import TrainingPlot
from ._widget import (
    META_KEY,
    cuda_device_name,
    list_user_models,
    reset_in_order,
    unwatch_layers,
    user_models_dir,
    watch_layers,
)
from .finetune import (  # the Qt-free core of fine-tuning
    FILE,
    FINE_TUNE,
    MIN_SIZE,
    OWN_ROLES,
    PHASE_CHOICES,
    Event,
    Note,
    Preview,
    PreviewJob,
    TrainJob,
    TrainOutcome,
    beside_placement,
    crop_box,
    describe_shape,
    describe_training_error,
    fit_patch,
    format_eta,
    frame_shape,
    layer_frames,
    next_free_path,
    run_training,
    synthesize_pairs,
    unwrap,
)

if TYPE_CHECKING:
    from napari.qt.threading import FunctionWorker, GeneratorWorker

    from .training import Progress

log = logging.getLogger(__name__)

Pair = tuple[np.ndarray, np.ndarray]


def check_layer_pair(blurry: Any, sharp: Any) -> int:
    """Number of pairs a (blurry, sharp) layer pair gives; ValueError naming both layers if they do not match."""
    for layer, role in ((blurry, "blurry"), (sharp, "sharp")):
        if layer is None:
            raise ValueError(f"No {role} layer chosen: open or select an image layer first.")
        if not isinstance(layer, napari.layers.Image):
            raise ValueError(f"'{layer.name}' is a {type(layer).__name__} layer: training needs Image layers.")
        if layer.multiscale:
            raise ValueError(f"'{layer.name}' is multiscale: training works on single-resolution images only.")
        if layer.rgb and layer.data.shape[-1] not in (3, 4):
            raise ValueError(f"'{layer.name}' has {layer.data.shape[-1]} channels: expected gray, RGB or RGBA.")
    if unwrap(blurry) is unwrap(sharp):
        raise ValueError(f"'{blurry.name}' is chosen as both the blurry and the sharp image: pick its sharp partner.")
    b_stack, b_frame = frame_shape(tuple(blurry.data.shape), blurry.rgb)
    s_stack, s_frame = frame_shape(tuple(sharp.data.shape), sharp.rgb)
    if b_stack != s_stack or b_frame[:2] != s_frame[:2]:
        raise ValueError(f"Shape mismatch: blurry '{blurry.name}' is {describe_shape(blurry.data.shape, blurry.rgb)}, "
                         f"sharp '{sharp.name}' is {describe_shape(sharp.data.shape, sharp.rgb)}; they must match.")
    return int(np.prod(b_stack)) if b_stack else 1


# --- the widget ------------------------------------------------------------------------------------
class TrainWidget(Container):
    """Dock widget: choose training pairs and a start model, press Start, watch the loss fall, use the model."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        self.worker: Optional[GeneratorWorker] = None
        self.synth_worker: Optional[FunctionWorker] = None
        self.pairs: list[tuple[napari.layers.Image, napari.layers.Image]] = []
        self._stop = threading.Event()
        self._default_save: Optional[Path] = None
        self._synth_runs = 0
        self._preview_source: Optional[napari.layers.Image] = None
        self._preview_place: dict = {}  # scale/translate putting the preview crop over its source
        self.last_outcome: Optional[TrainOutcome] = None

        # 1. training pairs
        self.source = RadioButtons(choices=[("from layers", "layers"), ("from a folder", "folder")], value="layers",
                                   orientation="horizontal", label="pairs")
        self.blurry = ComboBox(label="blurry", choices=self._layer_choices, nullable=True,
                               tooltip="Blurry image layer (a stack gives one pair per frame)")
        self.sharp = ComboBox(label="sharp", choices=self._layer_choices, nullable=True,
                              tooltip="Its sharp partner: same size (and same number of frames)")
        self.add_button = PushButton(text="Add pair", tooltip="Add this blurry/sharp pair to the list below")
        self.remove_button = PushButton(text="Remove", tooltip="Remove the selected pairs from the list")
        self.clear_button = PushButton(text="Clear")
        self.pair_list = Select(label="pair list", choices=self._pair_choices, allow_multiple=True,
                                tooltip="Pairs used for training; when empty, the blurry/sharp layers above are used")
        self.pair_list.native.setMaximumHeight(90)
        self.layer_box = Container(widgets=[self.blurry, self.sharp,
                                            Container(widgets=[self.add_button, self.remove_button, self.clear_button],
                                                      layout="horizontal", labels=False, label=""),
                                            self.pair_list])
        self.folder = FileEdit(label="folder", mode="d",
                               tooltip="blur/ + sharp/ subfolders, or SEQ/blur + SEQ/sharp (GoPro)")
        self.folder_box = Container(widgets=[self.folder], visible=False)

        # 2. pairs from sharp images alone
        self.synth_layer = ComboBox(label="sharp image", choices=self._layer_choices, nullable=True,
                                    tooltip="Sharp image (or stack) to blur synthetically")
        self.synth_kind = ComboBox(label="blur", choices=[("camera shake / defocus (global)", "global"),
                                                          ("moving objects (dynamic)", "dynamic")], value="global",
                                   tooltip="global: one kernel per image (motion, Gaussian, defocus); "
                                           "dynamic: objects moving over a shaking background (GoPro-like)")
        self.synth_count = SpinBox(label="pairs", value=8, min=1, max=1000, tooltip="How many random crops to make")
        self.synth_size = SpinBox(label="crop size", value=128, min=MIN_SIZE, max=2048, step=16)
        self.synth_button = PushButton(text="Make pairs")
        self.synth_box = Container(widgets=[self.synth_layer, self.synth_kind, self.synth_count, self.synth_size,
                                            self.synth_button])

        # 3. model and training settings
        self.start_model = ComboBox(label="start from", choices=self._model_choices, value="lite",
                                    tooltip="Bundled model, one of your trained models, or any checkpoint file")
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.pt *.pth", visible=False)
        self.phase = ComboBox(label="train", choices=PHASE_CHOICES, value=FINE_TUNE["phase"],
                              tooltip="everything: all weights at once (measured best for a new blur); joint freezes "
                                      "the global branch (the paper's phase 3)")
        self.steps = SpinBox(label="steps", value=FINE_TUNE["steps"], min=1, max=1_000_000, step=50, tooltip="Steps per phase")
        self.lr = FloatSpinBox(label="learning rate", value=FINE_TUNE["lr"], min=1e-6, max=0.1, step=1e-6)
        self.loss = ComboBox(label="loss", choices=[("per-image PSNR (bundled model)", "psnr"),
                                                    ("squared error (paper, eq. 4)", "mse"),
                                                    ("smooth L1 (Charbonnier)", "l1")], value=FINE_TUNE["loss"],
                             tooltip="Per-image PSNR weighs nearly sharp pictures as much as blurred ones")
        self.patch = SpinBox(label="patch size", value=FINE_TUNE["patch"], min=MIN_SIZE, max=1024, step=16,
                             tooltip="Training crops; reduced automatically to the smallest image")
        self.batch = SpinBox(label="batch size", value=FINE_TUNE["batch"], min=1, max=256)
        self.val_split = FloatSpinBox(label="validation split", value=FINE_TUNE["val_fraction"], min=0.0, max=0.9, step=0.05,
                                      tooltip="Fraction of pairs kept for validation PSNR (at least one pair trains)")
        self.reblur = CheckBox(text="learn my blur from more pictures", value=FINE_TUNE["reblur"] > 0,
                               tooltip="Estimate the blur kernel of your pairs and apply it to more sharp pictures "
                                       "(half of each batch), and keep a quarter of general examples, so a few "
                                       "pairs teach your blur without forgetting the rest")
        self.device = ComboBox(label="device", choices=self._device_choices(), value="auto")
        self.save_path = FileEdit(label="save to", mode="w", filter="*.pt",
                                  tooltip=f"Checkpoint to write; models in {user_models_dir()} "
                                          "appear in the Deblur widget")
        self.preview = CheckBox(text="preview while training", value=False,
                                tooltip="Deblur a crop of a layer with the current weights every few steps")
        self.preview_layer = ComboBox(label="preview on", choices=self._layer_choices, nullable=True, visible=False)
        self.preview_every = SpinBox(label="every (steps)", value=25, min=1, max=100_000, visible=False)
        self.settings_box = Container(widgets=[self.start_model, self.checkpoint, self.phase, self.steps, self.lr,
                                               self.loss, self.patch, self.batch, self.val_split, self.reblur,
                                               self.device, self.save_path,
                                               self.preview, self.preview_layer, self.preview_every])

        # 4. run
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop", enabled=False,
                                      tooltip="End after the current step, keep the best weights, save")
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.plot = TrainingPlot()
        plot_box = Container(labels=False)
        plot_box.native.layout().addWidget(self.plot)

        # napari docks ``native`` (magicgui's scroll area would be dropped): tabs keep the dock short instead
        self.pairs_page = Container(widgets=[self.source, self.layer_box, self.folder_box], labels=False)
        self.tabs = QTabWidget()
        pages = ((self.pairs_page, "Pairs"), (self.synth_box, "Make pairs"), (self.settings_box, "Settings"))
        for page, title in pages:
            self.tabs.addTab(page.native, title)
        self.tabs.setTabToolTip(1, "Make training pairs from sharp images alone (synthetic blur)")
        self.extend([Container(widgets=[self.start_button, self.stop_button], layout="horizontal", labels=False),
                     self.progress, self.status, plot_box])
        self.native.layout().insertWidget(0, self.tabs)
        self.lr.native.setStepType(self.lr.native.AdaptiveDecimalStepType)
        self._fit_narrow_dock()
        self._set_default_save()

        self.source.changed.connect(self._on_source_changed)
        self.add_button.changed.connect(lambda: self.add_pair())
        self.remove_button.changed.connect(self._remove_selected)
        self.clear_button.changed.connect(self.clear_pairs)
        self.synth_button.changed.connect(lambda: self.make_pairs())
        self.start_model.changed.connect(self._on_start_model_changed)
        self.preview.changed.connect(self._on_preview_toggled)
        self.start_button.changed.connect(lambda: self.start())
        self.stop_button.changed.connect(self.stop)
        models_changed.connect(self._on_models_saved)
        watch_layers(viewer, self._on_layers_changed)
        self.native.destroyed.connect(self._teardown)

    def _fit_narrow_dock(self) -> None:
        """Let long layer/model names elide instead of widening the dock past the window."""
        from qtpy.QtWidgets import QComboBox, QLineEdit

        for combo in self.native.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
        for edit in self.native.findChildren(QLineEdit):
            edit.setMinimumWidth(80)

    # --- choices ---------------------------------------------------------------------------------
    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, napari.layers.Image]]:
        """Image layers, skipping our own previews and feature maps."""
        return [(lyr.name, lyr) for lyr in self.viewer.layers
                if isinstance(lyr, napari.layers.Image) and lyr.metadata.get(META_KEY, {}).get("role") not in OWN_ROLES]

    def _pair_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        out = []
        for i, (b, s) in enumerate(self.pairs):
            stack, _ = frame_shape(tuple(b.data.shape), b.rgb)
            n = int(np.prod(stack)) if stack else 1
            out.append((f"{b.name}  →  {s.name}" + (f"  ({n} pairs)" if n > 1 else ""), i))
        return out

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        from .models import bundled_available

        lite = "lite (bundled)" if bundled_available("lite") else "lite (bundled weights missing: untrained)"
        items = [(lite, "lite")]
        items += [(f"{p.stem} (your model)", str(p)) for p in list_user_models()]
        return items + [("checkpoint file…", FILE)]

    @staticmethod
    def _device_choices() -> list[tuple[str, str]]:
        gpu = cuda_device_name()
        return [(f"auto ({'CUDA' if gpu else 'CPU'})", "auto"), ("CPU", "cpu"),
                (f"CUDA ({gpu})" if gpu else "CUDA (not available)", "cuda")]

    def _set_default_save(self) -> None:
        """Point 'save to' at a fresh file in the user models folder (unless the user chose a path)."""
        if self._default_save is None or Path(self.save_path.value) == self._default_save:
            self._default_save = next_free_path(user_models_dir())
            self.save_path.value = self._default_save

    # --- pairs -----------------------------------------------------------------------------------
    def add_pair(self, blurry: Any = None, sharp: Any = None) -> bool:
        """Add a (blurry, sharp) layer pair to the list (default: the chosen ones); False + notification if invalid."""
        blurry = self.blurry.value if blurry is None else blurry
        sharp = self.sharp.value if sharp is None else sharp
        try:
            check_layer_pair(blurry, sharp)
        except ValueError as exc:
            show_error(str(exc))
            return False
        if any(unwrap(b) is unwrap(blurry) and unwrap(s) is unwrap(sharp) for b, s in self.pairs):
            show_info(f"'{blurry.name}' → '{sharp.name}' is already in the list.")
            return False
        self.pairs.append((blurry, sharp))
        self.pair_list.reset_choices()
        return True

    def _remove_selected(self) -> None:
        chosen = set(self.pair_list.value)
        self.pairs = [p for i, p in enumerate(self.pairs) if i not in chosen]
        self.pair_list.reset_choices()

    def clear_pairs(self) -> None:
        self.pairs = []
        self.pair_list.reset_choices()

    def _on_source_changed(self, value: str) -> None:
        self.layer_box.visible = value == "layers"
        self.folder_box.visible = value == "folder"

    def _on_layers_changed(self, event: Any = None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._on_layers_changed)
        present = {id(unwrap(lyr)) for lyr in self.viewer.layers}
        self.pairs = [(b, s) for b, s in self.pairs if id(unwrap(b)) in present and id(unwrap(s)) in present]
        for combo in (self.blurry, self.sharp, self.synth_layer, self.preview_layer):
            reset_in_order(combo, self._layer_choices())
        self.pair_list.reset_choices()

    def _on_start_model_changed(self, value: str) -> None:
        self.checkpoint.visible = value == FILE

    def _on_preview_toggled(self, on: bool) -> None:
        self.preview_layer.visible = self.preview_every.visible = bool(on)
        if on and self.preview_layer.value is None:
            self.preview_layer.value = self.blurry.value

    def _on_models_saved(self, _path: Any = None) -> None:
        with self.start_model.changed.blocked():
            reset_in_order(self.start_model, self._model_choices(), fallback="lite")
        self.checkpoint.visible = self.start_model.value == FILE

    # --- making pairs from sharp images ----------------------------------------------------------
    def make_pairs(self, layer: Any = None) -> Optional[FunctionWorker]:
        """Blur crops of a sharp layer in a worker; adds '<name> synthetic blurry/sharp' stacks as a listed pair."""
        layer = self.synth_layer.value if layer is None else layer
        if self.synth_worker is not None:
            show_warning("Already making pairs: wait for it to finish.")
            return None
        if not isinstance(layer, napari.layers.Image):
            show_error("No sharp image chosen: open an image and pick it under 'sharp image'.")
            return None
        if layer.multiscale:
            show_error(f"'{layer.name}' is multiscale: pick a single-resolution image.")
            return None
        kind, count, size = self.synth_kind.value, int(self.synth_count.value), int(self.synth_size.value)
        seed, name, data, rgb = self._synth_runs, layer.name, layer.data, bool(layer.rgb)
        self._synth_runs += 1

        def work() -> tuple[np.ndarray, np.ndarray] | str:
            try:
                return synthesize_pairs(layer_frames(data, rgb), kind, count, size, seed)
            except Exception as exc:
                log.debug("synthesis failed", exc_info=exc)
                return describe_training_error(exc)

        worker = thread_worker(work, start_thread=False)()
        beside = beside_placement(layer)
        worker.returned.connect(lambda result: self._on_synthesized(result, name, kind, beside))
        worker.finished.connect(self._on_synth_finished)
        self.synth_worker = worker
        self.synth_button.enabled = False
        self.status.value = f"making {count} {kind} pairs from '{name}'…"
        worker.start()
        return worker

    def _on_synthesized(self, result: tuple[np.ndarray, np.ndarray] | str, name: str, kind: str,
                        beside: tuple[float, float] = (0.0, 0.0)) -> None:
        if isinstance(result, str):
            show_error(result)
            self.status.value = "failed: " + result
            return
        blur, sharp = result
        style = {"rgb": True, "contrast_limits": (0.0, 1.0), "translate": (0.0, *beside)}  # right of the source
        sharp_layer = self.viewer.add_image(sharp, name=f"{name} synthetic sharp ({kind})", visible=False, **style)
        blur_layer = self.viewer.add_image(blur, name=f"{name} synthetic blurry ({kind})", **style)
        self.add_pair(blur_layer, sharp_layer)
        self.status.value = f"added {len(blur)} synthetic {kind} pairs to the list"
        show_info(f"Made {len(blur)} {kind}-blur pairs from '{name}' and added them to the training list.")

    def _on_synth_finished(self) -> None:
        self.synth_worker = None
        self.synth_button.enabled = True

    # --- training --------------------------------------------------------------------------------
    def start(self) -> Optional[GeneratorWorker]:
        """Check the settings and start training in a thread worker; None (with a notification) if it cannot start."""
        if self.worker is not None:
            show_warning("Training is already running: wait for it or press Stop.")
            return None
        try:
            job = self._make_job()
        except ValueError as exc:
            show_error(str(exc))
            return None
        self._stop.clear()
        worker = thread_worker(run_training, start_thread=False)(job, self._stop.is_set)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(lambda exc: show_error(describe_training_error(exc)))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        phases = 3 if job.phase == "all" else 1
        self.plot.clear(job.steps, phases)
        self.progress.max, self.progress.value = job.steps * phases, 0
        self.progress.native.setFormat("%p%")
        self._set_running(True)
        self.status.value = f"training on {job.data_label}…"
        worker.start()
        return worker

    def stop(self) -> None:
        """Ask training to end after the current step; the best weights so far are saved."""
        if self.worker is not None:
            self._stop.set()
            self.status.value = "stopping after this step…"

    def _make_job(self) -> TrainJob:
        """Everything the worker needs, read from the widgets; ValueError with a one-line reason if unusable."""
        from . import models
        from .datasets import find_pairs

        layers: Optional[list] = None
        folder: Optional[str] = None
        if self.source.value == "layers":
            chosen = list(self.pairs)
            if not chosen:
                if self.blurry.value is None or self.sharp.value is None:
                    raise ValueError("No training pairs: choose a blurry and a sharp layer (or add pairs to the list).")
                chosen = [(self.blurry.value, self.sharp.value)]
            n = sum(check_layer_pair(b, s) for b, s in chosen)
            sizes = [frame_shape(tuple(b.data.shape), b.rgb)[1][:2] for b, _ in chosen]
            patch, note = fit_patch(sizes, int(self.patch.value))
            if note:
                show_info(note)
            layers = [(b.data, bool(b.rgb), s.data, bool(s.rgb)) for b, s in chosen]
            names = ", ".join(f"'{b.name}'" for b, _ in chosen[:3]) + (" …" if len(chosen) > 3 else "")
            label = f"{n} pair{'s' * (n != 1)} from {names}"
        else:
            folder_path = Path(str(self.folder.value)) if str(self.folder.value) not in ("", ".") else None
            if folder_path is None:
                raise ValueError("No training folder chosen: pick one with blur/ and sharp/ (or SEQ/blur, SEQ/sharp).")
            n = len(find_pairs(folder_path))  # checks the layout now; images are read in the worker
            folder, label = str(folder_path), f"{n} pairs from {folder_path}"
        model = self.start_model.value
        if model == FILE:
            path = Path(str(self.checkpoint.value))
            if not path.is_file():
                raise ValueError(f"Checkpoint file not found: {path}" if str(self.checkpoint.value) not in ("", ".")
                                 else "Choose a checkpoint file to start from.")
            model = str(path)
        if model != "lite":
            models.model_from_checkpoint(models.read_checkpoint(model), model)  # CheckpointError names the file
        if self.device.value == "cuda" and cuda_device_name() is None:
            raise ValueError("CUDA is not available on this machine: choose auto or CPU.")
        if float(self.lr.value) <= 0:
            raise ValueError("The learning rate must be above 0.")
        save = Path(str(self.save_path.value)).expanduser()
        if str(self.save_path.value) in ("", ".") or save.is_dir():
            raise ValueError("Choose a file to save the trained model to.")
        if save.suffix.lower() not in (".pt", ".pth"):
            save = save.with_name(save.name + ".pt")
        return TrainJob(layers, folder, model, self.phase.value, int(self.steps.value), float(self.lr.value),
                        int(self.patch.value), int(self.batch.value), float(self.val_split.value), self.device.value,
                        save, self._make_preview_job(), label, loss=self.loss.value,
                        reblur=FINE_TUNE["reblur"] if self.reblur.value else 0.0, rehearse=FINE_TUNE["rehearse"])

    def _make_preview_job(self) -> Optional[PreviewJob]:
        """The crop around the view centre of the preview layer's current frame, or None when preview is off."""
        layer = self.preview_layer.value if self.preview.value else None
        if layer is None:
            self._preview_source = None
            return None
        from .synthesis import as_rgb_float

        stack, frame = frame_shape(tuple(layer.data.shape), layer.rgb)
        h, w = frame[:2]
        try:
            point = np.asarray(layer.world_to_data(self.viewer.dims.point), dtype=float)
            centre_world = list(self.viewer.dims.point)
            centre_world[-2:] = list(self.viewer.scene.camera.center)[-2:]
            centre = tuple(np.asarray(layer.world_to_data(centre_world), dtype=float)[-2:])
        except Exception:  # layers with fewer dims than the viewer, odd transforms: use the first frame's centre
            point, centre = np.zeros(len(stack) + 2), (h / 2, w / 2)
        index = tuple(int(np.clip(round(point[i]), 0, n - 1)) for i, n in enumerate(stack)) if stack else ()
        y0, x0, y1, x1 = crop_box(h, w, centre)
        crop = as_rgb_float(np.asarray(layer.data[index][y0:y1, x0:x1]))
        scale = tuple(float(v) for v in layer.scale[-2:])
        translate = tuple(float(t + o * s) for t, o, s in zip(layer.translate[-2:], (y0, x0), scale))
        self._preview_source, self._preview_place = layer, {"scale": scale, "translate": translate}
        return PreviewJob(crop, layer.name, int(self.preview_every.value))

    def _set_running(self, running: bool) -> None:
        self.start_button.enabled = not running
        self.stop_button.enabled = running

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Note):
            show_info(event.text)
        elif isinstance(event, Preview):
            self._show_preview(event)
        else:
            self._on_progress(event)

    def _on_progress(self, p: Progress) -> None:
        x = p.phase_index * p.total + p.step
        self.plot.add(x, p.loss, p.val_psnr)
        self.progress.max = max(p.total * p.phase_count, 1)
        self.progress.value = min(x, self.progress.max)
        self.progress.native.setFormat(f"%p%   ETA {format_eta(p.eta_s)}")
        if p.val_start is not None and self.plot.start is None:
            self.plot.start = p.val_start
        psnr = f" · val PSNR {self.plot.psnr[-1][1]:.2f} dB" if self.plot.psnr else ""
        if self.plot.psnr and p.val_start is not None:  # what the run has gained over the model it started from
            psnr += f" ({self.plot.psnr[-1][1] - p.val_start:+.2f} dB vs start)"
        phase = f"{p.phase} ({p.phase_index + 1}/{p.phase_count})" if p.phase_count > 1 else p.phase
        self.status.value = f"{phase}: step {p.step}/{p.total} · loss {p.loss:.4g}{psnr}"

    def _show_preview(self, preview: Preview) -> None:
        source = self._preview_source
        if source is None:
            return
        name = f"{source.name} preview"
        meta = {META_KEY: {"role": "preview", "source": source.name, "step": preview.step}}
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == preview.image.shape:
            layer = self.viewer.layers[name]
            layer.metadata.update(meta)
            layer.data = preview.image
        else:
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_image(preview.image, name=name, rgb=True, contrast_limits=(0.0, 1.0), metadata=meta,
                                  **self._preview_place)

    def _on_returned(self, outcome: TrainOutcome) -> None:
        self.last_outcome = outcome
        if outcome.error:
            show_error(outcome.error)
            self.status.value = "failed: " + outcome.error
            return
        self.progress.native.setFormat("%p%")
        scored = [m for m in outcome.metrics.values() if isinstance(m, dict) and m.get("val_psnr")]
        score = f", val PSNR {scored[-1]['val_psnr']:.2f} dB" if scored else ""
        if scored and scored[-1].get("val_start") is not None:
            score += f" ({scored[-1]['val_psnr'] - scored[-1]['val_start']:+.2f} dB vs start)"
        how = "stopped" if outcome.stopped else "done"
        self.status.value = f"{how} after {outcome.steps} steps in {outcome.seconds:.0f} s{score}: saved {outcome.path}"
        models_changed.emit(str(outcome.path))
        show_info(f"Saved the fine-tuned model to {outcome.path}; choose it in the Deblur widget.")
        self._set_default_save()

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)

    def _teardown(self, *_: Any) -> None:
        self._stop.set()
        models_changed.disconnect(self._on_models_saved)
        unwatch_layers(self.viewer, self._on_layers_changed)
