"""Qt-free events shared by the plugin's widgets (so the training code can notify without importing Qt)."""
from __future__ import annotations

from psygnal import SignalInstance

# Emitted with the checkpoint's path after a model is saved into the user models folder; the Deblur
# widget listens and refreshes its model chooser so a freshly trained model can be used at once.
models_changed = SignalInstance((object,), name="models_changed")

__all__ = ["models_changed"]
