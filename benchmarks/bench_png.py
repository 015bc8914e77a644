"""16-bit colour PNG through ``imageio`` (imagecodecs/libpng): encode and decode time and size of a 720x1280
RGB frame, and that the round trip is exact.   python benchmarks/bench_png.py"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from napari_gldeblur.imageio import read_image_file, write_image_file


def main() -> None:
    rng = np.random.default_rng(0)
    img = (np.cumsum(rng.integers(0, 40, (720, 1280, 3)), axis=1) % 65536).astype(np.uint16)  # smooth ramps
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.png"
        t = time.perf_counter()
        write_image_file(path, img)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        back = read_image_file(path)
        read_s = time.perf_counter() - t
        print(f"720x1280 RGB uint16 PNG: write {write_s * 1e3:.0f} ms, read {read_s * 1e3:.0f} ms, "
              f"{path.stat().st_size / 1e6:.1f} MB, exact {np.array_equal(back, img)}")


if __name__ == "__main__":
    main()
