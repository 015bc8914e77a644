"""The Deblur dock widget: a thin magicgui form over ``inference.Deblurrer``, run in a napari thread worker.

The worker runs ``Deblurrer.steps`` over the layer's data (stacks frame by frame inside the engine),
yielding progress per tile, so the viewer stays responsive, the progress bar moves and Cancel stops
between tiles. Results become four
layers named after the source: ``<name> deblurred``, ``<name> local features``, ``<name> global
features`` and ``<name> attention mask``; running again on the same layer updates them in place.
Outputs are found again by the source's ``unique_id`` stored in their metadata, never by name or object
identity: napari hands plugins proxy objects (a new one per access), and names change when layers are renamed.
Every failure becomes one napari notification with a one-line reason; the widget stays usable.

Outputs keep the source's scale, translate, units, axis labels and metadata, and record what made them
(``result.provenance``) under ``metadata["napari_gldeblur"]["provenance"]``. A lazy layer (dask, zarr) is
read frame by frame and deblurred into a memory-mapped TIFF in the user cache folder, so memory does not grow
with the stack; its feature maps are computed for the frame on view only. A gray layer with a channel axis
(chosen in the widget) is deblurred channel by channel. The "folder" mode runs ``batch.deblur_files``, the
core of ``gldeblur deblur``, over a folder.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Optional, Union

import napari.layers
import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSlider, Label, ProgressBar, PushButton, RadioButtons
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ._events import models_changed
from ._layers import FEATURE_ROLES, META_KEY, SUFFIX  # noqa: F401
from .errors import describe_error  # noqa: F401 (the widgets' one-line messages)

if TYPE_CHECKING:
    from napari.qt.threading import GeneratorWorker

log = logging.getLogger(__name__)

BROWSE = "<browse>"  # value of the model chooser's "Browse…" entry
# Feature maps are floats in [0, 1]: perceptually uniform colormaps, one per map so they are told apart.
FEATURE_STYLE = {
    "local": {"colormap": "magma", "opacity": 0.7},
    "global": {"colormap": "viridis", "opacity": 0.7},
    "attention": {"colormap": "turbo", "opacity": 0.6},
}
TILE_CHOICES = [("auto", None)] + [(f"{t} px", t) for t in (128, 256, 512, 1024, 2048)]


def user_models_dir() -> Path:
    """Folder where the training widget saves checkpoints; the model chooser lists its ``*.pt`` files."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-gldeblur")) / "models"


def list_user_models(folder: Path | None = None) -> list[Path]:
    """Checkpoints in the user models folder, newest first (so a model just trained is at the top)."""
    folder = user_models_dir() if folder is None else folder
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.pt") if p.is_file()]
    return sorted(files, key=lambda p: (-p.stat().st_mtime, p.name))


def cuda_device_name() -> Optional[str]:
    """Name of the first CUDA device, or None when torch sees no usable GPU."""
    import torch

    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken driver must not break the widget
        return None


def output_name(source: str, role: str) -> str:
    return f"{source} {SUFFIX[role]}"


def source_key(layer: Any) -> str:
    """A layer's session-unique id as text: stable across renames and napari's per-access plugin proxies."""
    return str(layer.unique_id)


def output_meta(source: Any, role: str) -> dict[str, dict[str, str]]:
    """The metadata entry marking a layer as the ``role`` output of ``source``."""
    return {META_KEY: {"role": role, "source": source.name, "source_id": source_key(source)}}


def find_output(layers: Any, source: Any, role: str) -> Any:
    """The ``role`` output layer of ``source`` (by metadata, preferring the expected name), or None."""
    key = source_key(source)
    found = [lyr for lyr in layers
             if lyr.metadata.get(META_KEY, {}).get("source_id") == key and lyr.metadata[META_KEY].get("role") == role]
    named = [lyr for lyr in found if lyr.name == output_name(source.name, role)]
    return (named or found or [None])[0]


def check_layer(layer: Any) -> napari.layers.Image:
    """The layer to deblur, or ValueError with a one-line reason the user can act on."""
    if layer is None:
        raise ValueError("No image layer to deblur: open an image first (File > Open, or File > Open Sample).")
    if not isinstance(layer, napari.layers.Image):
        kind = type(layer).__name__
        raise ValueError(f"'{layer.name}' is a {kind} layer: deblurring needs an Image layer.")
    if layer.multiscale:
        raise ValueError(f"'{layer.name}' is multiscale: deblurring works on single-resolution images only.")
    return layer  # shape and dtype are checked by the engine, whose ValueErrors are already one line


LAYER_LIST_EVENTS = ("inserted", "removed", "reordered")


def watch_layers(viewer: Any, callback: Callable[..., None]) -> None:
    """Call ``callback(event)`` when layers are added, removed, reordered or (existing ones) renamed."""
    for name in LAYER_LIST_EVENTS:
        getattr(viewer.layers.events, name).connect(callback)
    for lyr in viewer.layers:
        lyr.events.name.connect(callback)


def unwatch_layers(viewer: Any, callback: Callable[..., None]) -> None:
    for name in LAYER_LIST_EVENTS:
        getattr(viewer.layers.events, name).disconnect(callback)


@dataclass
class Job:
    """What one run needs, captured in the main thread so the worker never touches layers."""

    data: Any  # the layer's array (numpy, dask, ...); the engine reads it frame by frame
    rgb: bool
    model: str
    device: str
    tile: Optional[int]
    features: bool
    strength: Union[float, str] = 1.0  # or "auto"
    channel_axis: Optional[int] = None
    out_path: Optional[Path] = None  # lazy input: stream the result into this memory-mapped TIFF
    feature_frame: Optional[tuple[int, ...]] = None  # lazy input: the stack index whose feature maps to show


@dataclass
class Outcome:
    """What the worker returns: result arrays by role, or a one-line error."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    error: Optional[str] = None
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)  # contrast limits of the feature maps
    summary: str = ""
    provenance: dict = field(default_factory=dict)
    feature_frame: Optional[tuple[int, ...]] = None  # set when the maps are of one frame of a stack


def robust_limits(values: np.ndarray, samples: int = 1_000_000) -> tuple[float, float]:
    """Contrast limits for a map in [0, 1]: its 0.5-99.5 percentiles (on a subsample for big stacks)."""
    flat = np.asarray(values).ravel()
    flat = flat[:: max(1, flat.size // samples)]
    lo, hi = (float(v) for v in np.percentile(flat, [0.5, 99.5]))
    if hi - lo < 1e-6:  # a flat map: show it against the full scale rather than amplify rounding noise
        return 0.0, 1.0
    return lo, hi


def model_stamp(model: str) -> Optional[int]:
    """Modification time of a checkpoint file (so a re-trained file is reloaded), None for bundled names."""
    try:
        return Path(model).stat().st_mtime_ns if Path(model).is_file() else None
    except OSError:
        return None


@lru_cache(maxsize=1)
def _cached_deblurrer(model: str, stamp: Optional[int], device: str, tile: Optional[int]):
    from .inference import Deblurrer

    return Deblurrer(model=model, device=device, tile=tile)


def make_deblurrer(model: str, device: str, tile: Optional[int]):
    """The inference engine for a model/device/tile choice, reused across runs while the choice is unchanged."""
    return _cached_deblurrer(model, model_stamp(model), device, tile)


def summarize(result: Any, shape: tuple[int, ...], rgb: bool, strength: Union[float, str] = 1.0) -> str:
    """Status line after a run: frames, time, device, precision, tiling and (if not 1) strength."""
    from .inference import strength_note

    frames = int(np.prod(shape[: len(shape) - (3 if rgb else 2)]))
    what = f"{frames} frames" if frames > 1 else "1 image"
    tile = getattr(result, "tile", None)
    tiles = f", tiles {tile[0]}x{tile[1]}" if tile else ""
    weaker = f", {strength_note(strength, result)}" if strength != 1.0 else ""
    line = (f"done: {what} in {getattr(result, 'seconds', 0.0):.1f} s{weaker} on {getattr(result, 'device', '?')} "
            f"({getattr(result, 'precision', 'fp32')}{tiles})")
    if strength == "auto" and not any(getattr(result, "strengths", (1.0,))):  # every frame came back as it was
        line += (": it looked sharp enough to the gate and came back unchanged; untick auto strength to apply "
                 "the network's change")
    return line


def is_lazy(data: Any) -> bool:
    """True for array kinds napari loads on demand (dask, zarr, ...): read those frame by frame."""
    return not isinstance(data, np.ndarray)


def results_dir() -> Path:
    """Where the widget streams results of lazy layers (memory-mapped TIFFs the user may keep)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-gldeblur")) / "results"


def memmap_output(path: Path, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new memory-mapped TIFF of ``shape``/``dtype`` (a numpy memmap napari displays without loading it)."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    return tifffile.memmap(path, shape=tuple(shape), dtype=dtype)


def describe_file(path: Path, shape: tuple[int, ...], provenance: dict) -> None:
    """Put the provenance into a finished memory-mapped result's TIFF description (as the CLI's files have it)."""
    import json

    import tifffile

    from .imageio import TEXT_KEY

    tifffile.tiffcomment(path, json.dumps({"shape": list(shape), TEXT_KEY: provenance}))


def run_job(job: Job, deblurrer_factory: Optional[Callable[..., Any]] = None) -> Generator[tuple[int, int], None, Outcome]:
    """Deblur the layer's data, yielding (done, total) tiles over all frames; returns an Outcome (never raises)."""
    try:
        deblurrer = (deblurrer_factory or make_deblurrer)(job.model, job.device, job.tile)
        out = None if job.out_path is None else memmap_output(job.out_path, job.data.shape, job.data.dtype)
        whole_stack_maps = job.features and job.feature_frame is None
        result = None
        for item in deblurrer.steps(job.data, rgb=job.rgb, features=whole_stack_maps, strength=job.strength,
                                    channel_axis=job.channel_axis, out=out):
            if hasattr(item, "image"):  # the DeblurResult comes last
                result = item
            else:
                done, total = item
                yield int(done), int(total)
        if result is None:
            return Outcome(error="Deblurring stopped before finishing.")
        if out is not None:
            out.flush()
            describe_file(job.out_path, tuple(out.shape), result.provenance)
        maps_of = result
        if job.features and job.feature_frame is not None:  # maps of the viewed frame only
            frame = np.asarray(job.data[job.feature_frame])
            axis = None if job.channel_axis is None else job.channel_axis - len(job.feature_frame)
            maps_of = deblurrer(frame, rgb=job.rgb, features=True, strength=1.0, channel_axis=axis if axis is not None and axis >= 0 else None)
        arrays = {"image": result.image}
        if job.features:
            maps = {"local": maps_of.local_features, "global": maps_of.global_features, "attention": maps_of.attention}
            arrays |= {role: np.asarray(m, dtype=np.float32) for role, m in maps.items() if m is not None}
        limits = {role: robust_limits(a) for role, a in arrays.items() if role != "image"}
        return Outcome(arrays, limits=limits, summary=summarize(result, tuple(job.data.shape), job.rgb, job.strength),
                       provenance=result.provenance, feature_frame=job.feature_frame if job.features else None)
    except Exception as exc:  # incl. MemoryError; reported as one notification in the main thread
        log.debug("deblurring failed", exc_info=exc)
        return Outcome(error=describe_error(exc))


@dataclass
class FolderJob:
    """A folder run: every image file of ``source`` into ``target`` through ``batch.deblur_files``."""

    source: Path
    target: Path
    model: str
    device: str
    tile: Optional[int]
    strength: Union[float, str] = "auto"


def run_folder_job(job: FolderJob, stop: Callable[[], bool] = lambda: False,
                   deblurrer_factory: Optional[Callable[..., Any]] = None) -> Generator[tuple[int, int], None, Outcome]:
    """Deblur the folder file by file, yielding (files done, files); a bad file is counted, not fatal."""
    from .batch import check_output_folder, collect_inputs, deblur_files
    from .inference import Cancelled

    try:
        files, problems = collect_inputs([job.source])
        if not files:
            return Outcome(error=problems[0] if problems else f"No images in {job.source}.")
        check_output_folder(job.target)
        deblurrer = (deblurrer_factory or make_deblurrer)(job.model, job.device, job.tile)
        failures, ok = [], 0
        yield 0, len(files)
        try:
            for item in deblur_files(deblurrer, files, job.target, strength=job.strength, cancel=stop):
                ok += item.error is None
                failures += [item.error.replace(str(item.source), item.source.name)] if item.error else []
                yield item.index + 1, item.total
        except Cancelled:
            return Outcome(summary=f"cancelled: {ok} of {len(files)} images deblurred into {job.target.name}/")
        summary = f"done: {ok} of {len(files)} images deblurred into {job.target.name}/"
        if failures:
            summary += f"; {len(failures)} failed (first: {failures[0]})"
        return Outcome(summary=summary)
    except Exception as exc:
        log.debug("folder deblurring failed", exc_info=exc)
        return Outcome(error=describe_error(exc))


def layer_placement(source: Any, ndim: Optional[int] = None) -> dict[str, Any]:
    """Where ``source`` sits in the world (scale, translate, affine, units, axis labels), for an output layer
    of ``ndim`` dimensions (default the source's; fewer: its last ``ndim`` axes, for maps of one frame)."""
    ndim = source.ndim if ndim is None else int(ndim)
    keep = slice(source.ndim - ndim, None)
    placement = {"scale": tuple(source.scale)[keep], "translate": tuple(source.translate)[keep],
                 "units": tuple(source.units)[keep], "axis_labels": tuple(source.axis_labels)[keep]}
    if ndim == source.ndim:
        placement |= {"rotate": source.rotate, "shear": source.shear, "affine": source.affine.affine_matrix}
    return placement


def reset_in_order(combo: ComboBox, choices: list[tuple[str, Any]], fallback: Any = None) -> None:
    """Show ``choices`` (what ``combo``'s choices callable returns) in order, keeping the value when it survives.

    magicgui's ``reset_choices`` only appends new names, so a renamed or re-sorted entry would land at the end.
    """
    current = combo.value
    names, values = [name for name, _ in choices], [value for _, value in choices]
    with combo.changed.blocked():
        combo.reset_choices()
        if [combo.native.itemText(i) for i in range(combo.native.count())] != names:
            combo.native.clear()
            combo.reset_choices()
        keep = current if any(v is current or v == current for v in values) else fallback
        if keep is not None and any(v is keep or v == keep for v in values):
            combo.value = keep
    if not (combo.value is current or combo.value == current):
        combo.changed.emit(combo.value)


class DeblurWidget(Container):
    """Dock widget: pick an Image layer and a model, press Deblur, get the result and the branch feature maps."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.worker: Optional[GeneratorWorker] = None
        self._extra_models: list[str] = []  # checkpoint files chosen with "Browse…" this session
        self._last_model = "lite"
        self._source: Optional[napari.layers.Image] = None
        self._ask_checkpoint = self._checkpoint_dialog  # replaceable in tests (no modal dialog there)

        self.mode = RadioButtons(label="deblur", choices=[("a layer", "layer"), ("a folder", "folder")], value="layer",
                                 orientation="horizontal",
                                 tooltip="a layer of the viewer, or every image file of a folder into another folder")
        self.layer = ComboBox(label="image", choices=self._layer_choices, nullable=False,
                              tooltip="Image layer to deblur (RGB, gray, 8/16-bit or float; stacks frame by frame)")
        self.channel_axis = ComboBox(label="channel axis", choices=self._channel_axis_choices, value=None,
                                     tooltip="An axis of channels (a C axis): each channel is deblurred as a gray "
                                             "image. A last axis of 1 or 2 is always taken as channels")
        self.input_folder = FileEdit(label="input", mode="d", visible=False,
                                     tooltip="Every png/jpg/tif/bmp file in this folder (not its subfolders)")
        self.output_folder = FileEdit(label="output", mode="d", visible=False,
                                      tooltip="Results keep each file's name, format and bit depth")
        self.model = ComboBox(label="model", choices=self._model_choices, value="lite",
                              tooltip=f"Bundled model, your trained models ({user_models_dir()}) or any checkpoint file")
        self.device = ComboBox(label="device", choices=self._device_choices(), value="auto",
                               tooltip="auto uses the GPU when CUDA is available")
        self.tile = ComboBox(label="tile size", choices=TILE_CHOICES, value=None,
                             tooltip="Process large images in overlapping tiles to save memory; "
                                     "auto fits the tile to the free memory of the device")
        self.strength = FloatSlider(label="strength", value=1.0, min=0.0, max=1.0, step=0.05,
                                    tooltip="How much of the network's change to keep: 1 = all, 0 = the input. "
                                            "Lower it if soft footage comes out over-sharpened")
        self.auto_strength = CheckBox(text="auto strength", value=True,
                                      tooltip="Choose the strength per image from how much the network changes it "
                                              "against the fine detail it already has: sharp and nearly sharp "
                                              "pictures are left alone (0), blurred ones get 1 (or 0.5)")
        self.strength.enabled = not self.auto_strength.value
        self.add_features = CheckBox(text="add branch feature layers", value=True,
                                     tooltip="Also add the local/global branch features and the attention mask")
        self.show_features = CheckBox(text="show feature layers", value=False,
                                      tooltip="Feature layers start visible (otherwise toggle them in the layer list)")
        self.run_button = PushButton(text="Deblur")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1, visible=True)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # the status line names device, precision, tiles and strength
        self.extend([self.mode, self.layer, self.channel_axis, self.input_folder, self.output_folder,
                     self.model, self.device, self.tile, self.auto_strength, self.strength,
                     self.add_features, self.show_features,
                     self.run_button, self.cancel_button, self.progress, self.status])

        self.run_button.changed.connect(lambda: self.deblur())
        self.cancel_button.changed.connect(self.cancel)
        self.mode.changed.connect(self._on_mode_changed)
        self.layer.changed.connect(lambda _: self.channel_axis.reset_choices())
        self.model.changed.connect(self._on_model_changed)
        self.show_features.changed.connect(self._apply_feature_visibility)
        self.auto_strength.changed.connect(lambda auto: setattr(self.strength, "enabled", not auto))
        models_changed.connect(self._on_models_saved)
        watch_layers(viewer, self._on_layers_changed)
        self._install_refresh_on_show()
        self.native.destroyed.connect(self._teardown)

    # --- choices ---------------------------------------------------------------------------------
    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, napari.layers.Image]]:
        """Image layers in the viewer, skipping our own feature maps (they are not photos)."""
        return [(lyr.name, lyr) for lyr in self.viewer.layers
                if isinstance(lyr, napari.layers.Image) and lyr.metadata.get(META_KEY, {}).get("role") not in FEATURE_ROLES]

    def _channel_axis_choices(self, _widget: Any = None) -> list[tuple[str, Optional[int]]]:
        """"none" and, for a gray layer of 3 or more dimensions, each of its axes (named by its axis label)."""
        layer = self.layer.value if hasattr(self, "layer") else None
        items: list[tuple[str, Optional[int]]] = [("none", None)]
        if layer is None or layer.rgb or layer.ndim < 3:
            return items
        labels = tuple(getattr(layer, "axis_labels", ())) or tuple(str(i) for i in range(layer.ndim))
        return items + [(f"{labels[i]} (axis {i}, size {n})", i) for i, n in enumerate(layer.data.shape)]

    def _on_mode_changed(self, mode: str) -> None:
        folder = mode == "folder"
        for w in (self.layer, self.channel_axis, self.add_features, self.show_features):
            w.visible = not folder
        for w in (self.input_folder, self.output_folder):
            w.visible = folder

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        from .models import bundled_available

        lite = "lite (bundled)" if bundled_available("lite") else "lite (bundled weights missing: untrained)"
        items = [(lite, "lite")]
        seen = {"lite"}
        for path in list_user_models():
            items.append((f"{path.stem} (your model)", str(path)))
            seen.add(str(path.resolve()))
        for path in self._extra_models:
            if path not in seen and Path(path).is_file():
                items.append((f"{Path(path).name} ({Path(path).parent})", path))
                seen.add(path)
        items.append(("Browse…", BROWSE))
        return items

    @staticmethod
    def _device_choices() -> list[tuple[str, str]]:
        from .inference import pick_device

        gpu = cuda_device_name()
        auto = pick_device("auto").type.upper()
        items = [(f"auto ({auto})", "auto"), ("CPU", "cpu"), (f"CUDA ({gpu})" if gpu else "CUDA (not available)", "cuda")]
        return items + ([("MPS (Apple GPU)", "mps")] if auto == "MPS" else [])

    def refresh_models(self) -> None:
        """Re-list checkpoints (the training widget may have saved one); keeps the current choice if it still exists."""
        with self.model.changed.blocked():
            reset_in_order(self.model, self._model_choices(), fallback="lite")
        self._last_model = self.model.value

    def add_model(self, path: str | Path, select: bool = True) -> None:
        """Offer a checkpoint file in the chooser and (by default) select it (what "Browse…" does after the dialog)."""
        path = str(Path(path).expanduser().resolve())
        if path not in self._extra_models:
            self._extra_models.append(path)
        self.refresh_models()
        if select:
            self.model.value = self._choice_for(path)

    def _choice_for(self, resolved: str) -> str:
        """The chooser value naming the file ``resolved`` (a user-folder entry may be spelled unresolved)."""
        for value in self.model.choices:
            if value not in ("lite", BROWSE) and str(Path(value).resolve()) == resolved:
                return value
        return resolved

    def _on_model_changed(self, value: str) -> None:
        if value != BROWSE:
            self._last_model = value
            return
        path = self._ask_checkpoint()
        if path:
            self.add_model(path)
        else:  # dialog cancelled: back to what was selected before
            with self.model.changed.blocked():
                self.model.value = self._last_model

    def _checkpoint_dialog(self) -> Optional[str]:
        from qtpy.QtWidgets import QFileDialog

        start = user_models_dir() if user_models_dir().is_dir() else Path.home()
        path, _ = QFileDialog.getOpenFileName(self.native, "Choose a napari-gldeblur checkpoint", str(start),
                                              "Checkpoints (*.pt *.pth);;All files (*)")
        return path or None

    def _on_models_saved(self, path: Any = None) -> None:
        """A checkpoint was saved (``path``, anywhere; None: just re-list the user folder): offer it, keep the choice."""
        if path is not None and str(path) and Path(path).is_file():
            self.add_model(path, select=False)
        else:
            self.refresh_models()

    def _on_layers_changed(self, event: Any = None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._on_layers_changed)
        reset_in_order(self.layer, self._layer_choices())

    def _install_refresh_on_show(self) -> None:
        """Refresh the model list whenever the dock is shown or the model chooser is clicked/focused."""
        from qtpy.QtCore import QEvent, QObject

        refresh = self.refresh_models

        class _Refresher(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
                if event.type() in (QEvent.Show, QEvent.FocusIn, QEvent.MouseButtonPress):
                    refresh()
                return False

        self._refresher = _Refresher(self.native)
        self.native.installEventFilter(self._refresher)
        self.model.native.installEventFilter(self._refresher)

    # --- running ---------------------------------------------------------------------------------
    def deblur(self, layer: Any = None) -> Optional[GeneratorWorker]:
        """Start deblurring ``layer`` (default: the chosen one) in a thread worker; None if it cannot start."""
        if self.worker is not None:
            show_warning("Deblurring is already running: wait for it or press Cancel.")
            return None
        if layer is None and self.mode.value == "folder":
            return self.deblur_folder()
        try:
            source = check_layer(self.layer.value if layer is None else layer)
            job = self._make_job(source)
        except ValueError as exc:
            show_error(str(exc))
            return None
        self._source = source
        return self._start(thread_worker(run_job, start_thread=False)(job), self._on_returned,
                           f"deblurring '{source.name}'…")

    def _start(self, worker: GeneratorWorker, on_returned: Callable[[Outcome], None], status: str) -> GeneratorWorker:
        """Wire a worker's progress, result, cancel and end to the widget, and start it."""
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_running(True)
        self.status.value = status
        worker.start()
        return worker

    def _engine_choice(self) -> tuple[str, str, Optional[int], Union[float, str]]:
        """(model, device, tile, strength) as chosen, or ValueError with what to change."""
        model, device = self.model.value, self.device.value
        if model == BROWSE:
            raise ValueError("Choose a model first.")
        if device == "cuda" and cuda_device_name() is None:
            raise ValueError("CUDA is not available on this machine: choose auto or CPU.")
        tile = None if self.tile.value is None else int(self.tile.value)
        strength = "auto" if self.auto_strength.value else float(self.strength.value)
        return model, device, tile, strength

    def _make_job(self, source: napari.layers.Image) -> Job:
        model, device, tile, strength = self._engine_choice()
        axis = self.channel_axis.value if not source.rgb else None
        job = Job(source.data, bool(source.rgb), model, device, tile, bool(self.add_features.value), strength, axis)
        if is_lazy(source.data):
            import time

            stamp = time.strftime("%Y%m%d-%H%M%S")
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in source.name)[:60]
            job.out_path = results_dir() / f"{safe} deblurred {stamp}.tif"
            job.feature_frame = self.viewed_frame(source, axis)
        return job

    def viewed_frame(self, source: napari.layers.Image, channel_axis: Optional[int] = None) -> tuple[int, ...]:
        """The stack index (all axes before the frame's own) of the slice the viewer shows of ``source``."""
        ndim = source.ndim
        frame_axes = 2 + (1 if channel_axis is not None and channel_axis >= ndim - 2 else 0)
        point = np.asarray(source.world_to_data(self.viewer.dims.point))[: ndim - frame_axes]
        shape = source.data.shape[: ndim - frame_axes]
        return tuple(int(min(max(round(float(v)), 0), n - 1)) for v, n in zip(point, shape))

    def deblur_folder(self, source: Any = None, target: Any = None) -> Optional[GeneratorWorker]:
        """Deblur every image file of the input folder into the output folder in a thread worker."""
        import threading

        if self.worker is not None:
            show_warning("Deblurring is already running: wait for it or press Cancel.")
            return None
        try:
            job = self._make_folder_job(source, target)
        except ValueError as exc:
            show_error(str(exc))
            return None
        self._stop = threading.Event()
        return self._start(thread_worker(run_folder_job, start_thread=False)(job, self._stop.is_set),
                           self._on_folder_returned, f"deblurring the images in {job.source}…")

    def _make_folder_job(self, source: Any = None, target: Any = None) -> "FolderJob":
        source = Path(source if source is not None else self.input_folder.value).expanduser()
        target = Path(target if target is not None else self.output_folder.value).expanduser()
        if not source.is_dir():
            raise ValueError(f"Input folder {source} does not exist: choose a folder of images.")
        if str(target) in ("", ".") or target.resolve() == source.resolve():
            raise ValueError("Choose an output folder other than the input folder (results keep the file names).")
        return FolderJob(source, target, *self._engine_choice())

    def _on_folder_returned(self, outcome: "Outcome") -> None:
        if outcome.error:
            show_error(outcome.error)
            self.status.value = "failed: " + outcome.error
            return
        self.progress.value = self.progress.max
        self.status.value = outcome.summary
        (show_warning if "failed" in outcome.summary or "cancelled" in outcome.summary else show_info)(outcome.summary)

    def cancel(self) -> None:
        """Ask the worker to stop after the current tile."""
        if self.worker is not None:
            if getattr(self, "_stop", None) is not None:
                self._stop.set()
            self.worker.quit()
            self.status.value = "cancelling…"

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        if running:
            self.progress.max, self.progress.value = 1, 0

    def _on_progress(self, value: tuple[int, int]) -> None:
        done, total = value
        self.progress.max = max(int(total), 1)
        self.progress.value = min(int(done), self.progress.max)

    def _on_returned(self, outcome: Outcome) -> None:
        source = self._source
        if outcome.error:
            show_error(outcome.error)
            self.status.value = "failed: " + outcome.error
            return
        if source is None or source_key(source) not in {source_key(lyr) for lyr in self.viewer.layers}:
            show_warning("The source layer was removed while deblurring: result discarded.")
            return
        self.show_results(source, outcome.arrays, outcome.limits, outcome.provenance, outcome.feature_frame)
        self.progress.value = self.progress.max
        self.status.value = outcome.summary

    def _on_aborted(self) -> None:
        self.status.value = "cancelled"
        show_info("Deblurring cancelled.")

    def _on_finished(self) -> None:
        self.worker = None
        self._source = None
        self._set_running(False)

    def _teardown(self, *_: Any) -> None:
        if self.worker is not None:
            self.worker.quit()
        models_changed.disconnect(self._on_models_saved)
        unwatch_layers(self.viewer, self._on_layers_changed)

    # --- results ---------------------------------------------------------------------------------
    def show_results(self, source: napari.layers.Image, arrays: dict[str, np.ndarray],
                     limits: Optional[dict[str, tuple[float, float]]] = None, provenance: Optional[dict] = None,
                     feature_frame: Optional[tuple[int, ...]] = None) -> list[napari.layers.Image]:
        """Add or update the output layers of ``source``; drop stale maps this model did not produce.

        The result keeps the source's placement (scale, translate, rotation, units, axis labels), metadata and
        contrast limits (so both compare 1:1); feature maps are stretched to ``limits`` (default: their robust
        range) within a [0, 1] slider range. Maps of one frame (``feature_frame``) get the frame's placement.
        """
        limits = limits or {}
        placement = layer_placement(source)
        extra = {"provenance": provenance} if provenance else {}
        out = [self._upsert(source, "image", arrays["image"], placement, extra, rgb=source.rgb,
                            contrast_limits=source.contrast_limits, gamma=source.gamma,
                            colormap=None if source.rgb else source.colormap, blending=source.blending)]
        for role in FEATURE_ROLES:
            if role in arrays:
                lim = limits.get(role) or robust_limits(arrays[role])
                where = placement if feature_frame is None else layer_placement(source, arrays[role].ndim)
                meta = extra | ({"frame": list(feature_frame)} if feature_frame is not None else {})
                out.append(self._upsert(source, role, arrays[role], where, meta, rgb=False, contrast_limits_range=(0.0, 1.0),
                                        contrast_limits=lim, blending="translucent", **FEATURE_STYLE[role]))
            elif (stale := find_output(self.viewer.layers, source, role)) is not None:
                self.viewer.layers.remove(stale)
        self.viewer.layers.selection.active = out[0]  # show the result's controls, not the last map's
        return out

    def _upsert(self, source: napari.layers.Image, role: str, data: np.ndarray, placement: dict, extra: dict,
                **style: Any):
        """Update ``source``'s ``role`` output in place, or add it; a same-named layer that is not ours is left alone."""
        name = output_name(source.name, role)
        style = {k: v for k, v in style.items() if v is not None}
        meta = output_meta(source, role)
        meta[META_KEY].update(extra)
        meta = {**{k: v for k, v in source.metadata.items() if k != META_KEY}, **meta}  # the source's metadata too
        old = find_output(self.viewer.layers, source, role)
        if isinstance(old, napari.layers.Image) and old.rgb == style["rgb"] and old.ndim == data.ndim - style["rgb"]:
            old.data = data  # in place: keeps the user's position in the layer list and visibility
            for key, value in {**placement, **style}.items():
                if key not in ("rgb", "opacity", "colormap", "blending"):  # keep what the user may have restyled
                    setattr(old, key, value)
            if old.name == output_name(old.metadata[META_KEY].get("source", ""), role):  # not renamed by the user:
                old.name = name  # follow the source's current name
            old.metadata.clear()
            old.metadata.update(meta)
            return old
        if old is not None:
            self.viewer.layers.remove(old)
        visible = True if role == "image" else bool(self.show_features.value)
        slider = style.pop("contrast_limits_range", None)  # not a constructor argument
        layer = self.viewer.add_image(data, name=name, metadata=meta, visible=visible, **placement, **style)
        if slider is not None:
            layer.contrast_limits_range = slider
            layer.contrast_limits = style["contrast_limits"]
        return layer

    def _apply_feature_visibility(self, show: bool) -> None:
        """Show or hide the feature layers of the chosen source (the setting applies to existing ones too)."""
        source = self.layer.value
        if source is None:
            return
        for role in FEATURE_ROLES:
            layer = find_output(self.viewer.layers, source, role)
            if layer is not None:
                layer.visible = bool(show)
