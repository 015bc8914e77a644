"""Qt-free events shared by the plugin's widgets (so the training code can notify without importing Qt)."""
from __future__ import annotations

from psygnal import SignalInstance

# Emitted with the saved checkpoint's path (str or Path, in the user models folder or anywhere else) after a
# model is saved; the Deblur widget listens, adds that file to its model chooser (without selecting it) and
# re-lists the user models folder, so a freshly trained model can be used at once. Emitting with no path
# (or None) only re-lists the user models folder.
models_changed = SignalInstance((object,), name="models_changed")

__all__ = ["models_changed"]
