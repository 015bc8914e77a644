"""Deblurring files and folders: the one core behind ``gldeblur deblur`` and the Deblur widget's folder mode.

Each input file becomes ``OUT/<same name>`` in its own format and bit depth, with the result's provenance
in the file (TIFF description / PNG text chunk). Multi-page TIFF stacks are read and written one frame at a
time, so a long stack never sits in memory. One bad file is reported and the rest still run. Under
``torchrun`` each rank takes its share of the files (``shard``) on its own GPU.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

FEATURE_FILES = {"local": "local_features", "global": "global_features", "attention": "attention"}


@dataclass
class FileDone:
    """One input handled: the files written, or the one-line reason it failed."""

    index: int
    total: int
    source: Path
    written: list[Path] = field(default_factory=list)
    error: Optional[str] = None


def one_line(e: BaseException, path: Optional[Path] = None) -> str:
    """The first line of an error, prefixed with ``path`` unless the message already names it."""
    from .models import first_line

    text = first_line(e, limit=300)
    return text if path is None or str(path) in text else f"{path}: {text}"


def check_output_folder(out: Path) -> None:
    """Make ``out`` and check it takes files, before any image is deblurred."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as e:
        raise ValueError(f"-o {out} is not a writable folder ({e.strerror or e})") from None


def collect_inputs(inputs: Sequence[Union[str, os.PathLike]]) -> tuple[list[Path], list[str]]:
    """Image files named or inside the named folders (not recursive), and one message per unusable input."""
    from .imageio import EXTENSIONS, list_images

    files: list[Path] = []
    problems: list[str] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = list_images(path)
            if not found:
                problems.append(f"{path}: no {'/'.join(e[1:] for e in EXTENSIONS)} images in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks as ``torchrun`` sets them (0, 1 when run alone)."""
    try:
        return int(os.environ.get("RANK", 0)), max(1, int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError:
        raise ValueError("RANK and WORLD_SIZE must be integers (as torchrun sets them)") from None


def shard(files: Sequence[Path], rank: int, world: int) -> list[Path]:
    """The files rank ``rank`` of ``world`` deblurs: every world-th file, so ranks share the work evenly."""
    return list(files[rank::world])


def rank_device(device: str) -> str:
    """Under torchrun with CUDA, ``auto``/``cuda`` mean this rank's GPU (``cuda:LOCAL_RANK``)."""
    import torch

    if os.environ.get("LOCAL_RANK") is not None and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return device


def feature_path(out: Path, stem: str, role: str) -> Path:
    return out / f"{stem}_{role}.tif"


def planned_outputs(src: Path, out: Path, features: bool) -> list[Path]:
    return [out / src.name] + ([feature_path(out, src.stem, role) for role in FEATURE_FILES] if features else [])


def deblur_file(d, src: Path, out: Path, features: bool = False, strength: Union[float, str] = "auto",
                channel_axis: Optional[int] = None, progress: Optional[Callable[[int, int], object]] = None,
                cancel: Optional[Callable[[], bool]] = None) -> list[Path]:
    """Deblur one file into ``out`` (same name and format) with Deblurrer ``d``; returns the paths written."""
    from .imageio import TiffFrames, TiffStack, open_image_file, write_image_file
    from .inference import image_layout

    target = out / src.name
    if target.resolve() == src.resolve():
        raise ValueError(f"the output would overwrite the input; choose another -o than {out}")
    image = open_image_file(src)
    try:
        if isinstance(image, TiffStack):  # a stack: frames stream from the input pages to the output pages
            colour = channel_axis is None and image_layout(image.shape).channels > 1  # the engine's own rule
            frames = TiffFrames(target, image.shape, image.dtype, rgb=colour)
            try:
                result = d(image, progress=progress, cancel=cancel, features=features, strength=strength,
                           channel_axis=channel_axis, out=frames)
            except BaseException:
                frames.discard()
                raise
            frames.set_metadata(result.provenance)
            written = [frames.close()]
        else:
            result = d(image, progress=progress, cancel=cancel, features=features, strength=strength,
                       channel_axis=channel_axis)
            written = [write_image_file(target, result.image, metadata=result.provenance)]
    finally:
        if isinstance(image, TiffStack):
            image.close()
    if features:
        written += write_features(result, out, src.stem)
    return written


def write_features(result, out: Path, stem: str) -> list[Path]:
    """The result's feature maps as float32 TIFFs beside the image (variants without a map skip it)."""
    from .imageio import write_image_file

    written = []
    for role, name in FEATURE_FILES.items():
        arr = getattr(result, name)
        if arr is not None:
            written.append(write_image_file(feature_path(out, stem, role), np.asarray(arr), metadata=result.provenance))
    return written


def deblur_files(d, files: Sequence[Path], out: Path, features: bool = False, strength: Union[float, str] = "auto",
                 channel_axis: Optional[int] = None, progress: Optional[Callable[[int, int], object]] = None,
                 cancel: Optional[Callable[[], bool]] = None) -> Iterator[FileDone]:
    """Deblur ``files`` into ``out`` one by one, yielding a ``FileDone`` per file; a bad file does not stop the
    rest (``Cancelled`` from ``cancel`` does). Two inputs that would write the same output: the second fails."""
    from .inference import Cancelled

    taken: set[Path] = set()
    for i, src in enumerate(files):
        try:
            clash = [p for p in planned_outputs(src, out, features) if p.resolve() in taken]
            if clash:
                raise ValueError(f"another input already wrote {clash[0]}; rename one of them")
            written = deblur_file(d, src, out, features, strength, channel_axis, progress, cancel)
            taken |= {p.resolve() for p in written}
            yield FileDone(i, len(files), src, written)
        except Cancelled:
            raise
        except (ValueError, OSError, MemoryError, RuntimeError) as e:  # one line per bad file; the others still run
            yield FileDone(i, len(files), src, error=one_line(e, src))
