"""The wheel carries the npe2 manifest and the bundled weights; npe2 validates it installed both ways."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)])
    (whl,) = out.glob("napari_gldeblur-*.whl")
    return whl


def test_wheel_contains_manifest_weights_and_entry_point(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        manifest = z.read("napari_gldeblur/napari.yaml").decode()
        eps = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert manifest == (ROOT / "napari.yaml").read_text()  # the root file itself, not a dangling link
    assert "napari-gldeblur = napari_gldeblur:napari.yaml" in eps
    assert "gldeblur = napari_gldeblur.cli:main" in eps
    if (ROOT / "src/napari_gldeblur/weights/lite.pt").exists():
        assert "napari_gldeblur/weights/lite.pt" in names and "napari_gldeblur/weights/lite.sha256" in names


def test_npe2_validates_wheel_install(wheel, tmp_path):
    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)])
    env = {**__import__("os").environ, "PYTHONPATH": str(target)}
    where = _run([sys.executable, "-c", "import napari_gldeblur; print(napari_gldeblur.__file__)"], env=env)
    assert where.stdout.strip().startswith(str(target))  # the wheel's copy, not the checkout
    _run([sys.executable, "-m", "npe2", "validate", "--imports", "napari-gldeblur"], env=env)


def test_npe2_validates_current_install():
    _run([sys.executable, "-m", "npe2", "validate", "--imports", "napari-gldeblur"])
