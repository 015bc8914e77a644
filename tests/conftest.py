"""Shared fixtures: an isolated per-user data folder, one torch thread, and a tiny checkpoint that runs in milliseconds."""
from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--bundled-model", default="lite",
                     help="the model the bundled-model checks of test_models.py measure: 'lite', or a candidate "
                          "checkpoint before scripts/bundle_weights.py ships it")


@pytest.fixture(scope="session")
def bundled_model(request) -> str:
    return request.config.getoption("--bundled-model")


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _one_torch_thread(request, monkeypatch):
    """Run torch on one intra-op thread: tiny test nets are ~50x slower on 2 threads when another process
    (e.g. a background training run) shares the cores, and gain nothing from threads otherwise. The
    Deblurrer's ``inference.use_all_cores`` would raise the count again, so it reports without changing it.
    Tests that check thread behaviour opt out with ``@pytest.mark.torch_threads``."""
    if request.node.get_closest_marker("torch_threads"):
        yield
        return
    import torch

    from napari_gldeblur import inference

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(inference, "use_all_cores", torch.get_num_threads)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path_factory, monkeypatch):
    """Point platformdirs' user data folder (user_models_dir) at a temp dir so tests never touch $HOME."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg_data")))


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A valid checkpoint of a width-4, 1-block DBAF net with seeded random weights."""
    import torch

    from napari_gldeblur.models import write_checkpoint
    from napari_gldeblur.network import DBAFNet, NetConfig

    torch.manual_seed(seed)
    config = NetConfig(width=4, blocks=1)
    net = DBAFNet(config)
    return write_checkpoint(path, {"config": config.as_dict(), "phase": "test", "step": 0,
                                   "model": net.state_dict(), "optimizer": None, "metrics": {}})


@pytest.fixture
def make_checkpoint():
    """``make_checkpoint(path, seed=0)`` writes a tiny valid checkpoint and returns its path."""
    return save_tiny_checkpoint


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    return save_tiny_checkpoint(tmp_path / "tiny.pt")
