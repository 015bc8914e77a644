"""Shared fixtures: an isolated per-user data folder and a tiny checkpoint that runs in milliseconds."""
from __future__ import annotations

from pathlib import Path

import pytest


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
