"""napari-gldeblur: deblurring with the global-local blur disentangling network (Li et al. 2021)."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Deblurrer", "DeblurResult", "DBAFNet", "build", "__version__"]


def __getattr__(name: str):
    # Lazy imports keep `import napari_gldeblur` cheap for napari's plugin discovery.
    if name in ("Deblurrer", "DeblurResult"):
        from . import inference

        return getattr(inference, name)
    if name in ("DBAFNet", "build"):
        from . import network

        return getattr(network, name)
    raise AttributeError(name)
