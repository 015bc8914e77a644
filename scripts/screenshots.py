"""Render README screenshots of the Deblur widget in a real napari viewer (run under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py \
        [--image ../shared/data/real_blur_no_gt/gopro_test_GOPR0384_11_00-000001.png] [--model lite|CKPT]

Writes into ``docs/images/``: ``deblur_widget.png`` (the whole window: widget, layer list, deblurred
result), ``deblur_grid.png`` (the same window in napari's grid mode with all five layers side by side) and
``feature_layers.png`` (labelled panels: blurry input, deblurred, local features, global features,
attention mask, each alone at full opacity as the canvas shows it) and ``folder_mode.png`` (the widget in
folder mode after deblurring a folder of scikit-image pictures, one of them broken on purpose);
``--folder-only`` renders just that one. ``--finetune-only`` renders ``train_widget.png``: the Fine-tune
widget after a short run on 6 pairs of one motion streak, with the live plot and the gain over the start.
The model used is printed and written into ``docs/images/screenshots.txt`` so a caption can say it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = ROOT.parent / "shared" / "data" / "real_blur_no_gt" / "gopro_test_GOPR0384_11_00-000001.png"


def wait_for(widget, app, timeout: float = 1800.0) -> None:
    """Pump the Qt event loop until the widget's worker has finished."""
    t0 = time.monotonic()
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.05)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("deblurring took too long")
    app.processEvents()


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in a dark band above ``image`` (RGB uint8)."""
    from PIL import Image, ImageDraw, ImageFont

    band = 34
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + band), (38, 41, 48))
    canvas.paste(Image.fromarray(image[..., :3]), (0, band))
    font = ImageFont.truetype(str(FONT), 20) if FONT.is_file() else ImageFont.load_default()
    ImageDraw.Draw(canvas).text((10, 5), text, fill=(235, 235, 235), font=font)
    return np.asarray(canvas)


def crop_to_content(shot: np.ndarray) -> np.ndarray:
    """Cut the black canvas margins around the image out of a canvas screenshot."""
    lit = shot[..., :3].max(axis=-1) > 0
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    return shot[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if rows.size else shot


def fit_width(image: np.ndarray, width: int) -> np.ndarray:
    from skimage.transform import resize

    height = round(image.shape[0] * width / image.shape[1])
    return (resize(image[..., :3], (height, width), anti_aliasing=True) * 255 + 0.5).astype(np.uint8)


def grid(rows: list[list[np.ndarray]], width: int) -> np.ndarray:
    """Rows of labelled panels, each row scaled to ``width`` pixels, stacked with a thin gap."""
    out = []
    for panels in rows:
        w = width // len(panels)
        scaled = [fit_width(p, w) for p in panels]
        h = min(p.shape[0] for p in scaled)
        row = np.concatenate([p[:h] for p in scaled], axis=1)
        out.append(np.pad(row, ((0, 6), (0, width - row.shape[1]), (0, 0)), constant_values=38))
    return np.concatenate(out, axis=0)


def describe_model(model: str) -> str:
    """Which weights made the pictures: bundled or a checkpoint, with its training phase and step."""
    from napari_gldeblur.models import bundled_available, model_info

    if model == "lite" and not bundled_available("lite"):
        return "lite WITHOUT bundled weights (untrained network)"
    info = model_info(model)
    where = "bundled lite" if model == "lite" else model
    return f"{where} (config {info.get('config')}, phase {info.get('phase')}, step {info.get('step')})"


def folder_shot(viewer, widget, app, out: Path) -> None:
    """Deblur a temp folder of scikit-image pictures (plus one broken file) in folder mode; screenshot the window."""
    import tempfile

    import skimage.data

    from napari_gldeblur.imageio import write_image_file

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "my_blurry_photos", Path(tmp) / "deblurred"
        for name in ("astronaut", "coffee", "chelsea", "rocket"):
            write_image_file(src / f"{name}.png", getattr(skimage.data, name)())
        (src / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        widget.mode.value = "folder"
        widget.input_folder.value, widget.output_folder.value = src, dst
        app.processEvents()
        widget.run_button.native.click()
        wait_for(widget, app)
        print(widget.status.value, flush=True)
        app.processEvents()
        viewer.screenshot(str(out / "folder_mode.png"), canvas_only=False)
    widget.mode.value = "layer"


def finetune_shot(viewer, app, out: Path, steps: int) -> None:
    """Fine-tune the bundled model on 6 pairs of a 17 px motion streak (two 3-frame layers); screenshot the widget."""
    import skimage.data

    from napari_gldeblur import degradations as dg

    kernel = dg.line_kernel(17.0)
    rng = np.random.default_rng(0)
    blurs, sharps = [], []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "astronaut", "coffee"):
        im = getattr(skimage.data, name)()[..., :3] / 255.0
        y, x = (int(rng.integers(12, n - 204)) for n in im.shape[:2])
        sharp = im[y - 12:y + 204, x - 12:x + 204]
        blurs.append(np.round(np.clip(dg.blur(sharp, kernel)[12:-12, 12:-12], 0, 1) * 255).astype(np.uint8))
        sharps.append(np.round(sharp[12:-12, 12:-12] * 255).astype(np.uint8))
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    b = viewer.add_image(np.stack(blurs), name="my blurry shots", rgb=True)
    s = viewer.add_image(np.stack(sharps), name="my sharp shots", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-gldeblur", "Fine-tune (train on your pairs)")
    widget.add_pair(b, s)
    widget.steps.value = steps
    widget.val_split.value = 0.34
    widget.tabs.setCurrentIndex(2)  # the Settings tab: the defaults in view
    app.processEvents()
    viewer.screenshot(str(out / "train_widget_settings.png"), canvas_only=False)
    widget.start_button.native.click()
    wait_for(widget, app, timeout=3600)
    widget.tabs.setCurrentIndex(0)
    app.processEvents()
    print(widget.status.value, flush=True)
    viewer.screenshot(str(out / "train_widget.png"), canvas_only=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--model", default="lite", help="lite (bundled) or a checkpoint path")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--tile", type=int, default=None, help="tile size (default: auto)")
    parser.add_argument("--folder-only", action="store_true", help="only the folder-mode screenshot")
    parser.add_argument("--finetune-only", action="store_true", help="only the Fine-tune widget screenshot")
    parser.add_argument("--finetune-steps", type=int, default=150)
    args = parser.parse_args(argv)

    import napari
    import napari._qt.qt_main_window as qt_main_window
    from qtpy.QtWidgets import QApplication
    from skimage.io import imsave

    from napari_gldeblur._sample_data import dynamic_scene

    args.out.mkdir(parents=True, exist_ok=True)
    qt_main_window.SHOW_QT_WARNING = False  # keep the PyQt5 deprecation toast out of the picture
    viewer = napari.Viewer(show=True, title="napari: GL Deblur")
    viewer.window._qt_window.resize(1500, 820)
    app = QApplication.instance()
    if args.image.is_file():
        [source] = viewer.open(str(args.image), plugin="napari-gldeblur")
        source.name = "blurry photo"
        origin = str(args.image)
    else:  # no real data here: fall back to the synthetic sample
        for data, meta, _ in dynamic_scene():
            viewer.add_image(data, **meta)
        source = viewer.layers[-1]
        origin = "sample data: blurry scene (moving object)"
    _, widget = viewer.window.add_plugin_dock_widget("napari-gldeblur", "Deblur")
    if args.model != "lite":
        widget.add_model(args.model)
    if args.tile:
        widget.tile.value = args.tile
    widget.layer.value = source
    app.processEvents()
    if args.folder_only:
        folder_shot(viewer, widget, app, args.out)
        viewer.close()
        return 0
    if args.finetune_only:
        finetune_shot(viewer, app, args.out, args.finetune_steps)
        viewer.close()
        return 0
    model_note = describe_model(args.model)
    print(f"deblurring {origin} with {model_note} ...", flush=True)
    widget.run_button.native.click()
    wait_for(widget, app)
    print(widget.status.value, flush=True)
    if f"{source.name} deblurred" not in viewer.layers:
        print("no result: " + widget.status.value, file=sys.stderr)
        return 1

    viewer.reset_view()
    app.processEvents()
    viewer.screenshot(str(args.out / "deblur_widget.png"), canvas_only=False)
    widget.show_features.value = True  # every output side by side in napari's grid mode
    viewer.canvas.grid.enabled, viewer.canvas.grid.shape = True, (3, 2)
    viewer.reset_view()
    app.processEvents()
    viewer.screenshot(str(args.out / "deblur_grid.png"), canvas_only=False)
    viewer.canvas.grid.enabled = False

    roles = ["deblurred", "local features", "global features", "attention mask"]
    outputs = [viewer.layers[f"{source.name} {r}"] for r in roles]
    for layer in outputs[1:]:
        layer.opacity = 1.0  # the maps alone, as they are (in the viewer they sit at 0.6-0.7 over the result)
    panels = {}
    for title, layer in [("blurry input", source), ("deblurred", outputs[0]),
                         ("local blur features", outputs[1]), ("global blur features", outputs[2]),
                         ("attention mask", outputs[3])]:
        for other in viewer.layers:
            other.visible = other is layer
        app.processEvents()
        panels[title] = label(crop_to_content(viewer.screenshot(canvas_only=True, flash=False)), title)
    names = list(panels)
    figure = grid([[panels[n] for n in names[:2]], [panels[n] for n in names[2:]]], width=1280)
    imsave(args.out / "feature_layers.png", figure, check_contrast=False)
    (args.out / "screenshots.txt").write_text(
        f"image: {origin}\nmodel: {model_note}\n{widget.status.value}\n"
        f"command: xvfb-run -a python scripts/screenshots.py {' '.join(argv or sys.argv[1:])}\n")
    folder_shot(viewer, widget, app, args.out)
    print(f"wrote deblur_widget.png, deblur_grid.png, feature_layers.png and folder_mode.png into {args.out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
