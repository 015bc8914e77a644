"""What marks our output layers, shared by the widgets and the writer (Qt-free, no napari import)."""
from __future__ import annotations

META_KEY = "napari_gldeblur"  # layer.metadata entry marking our outputs: {"role", "source", "source_id"}
FEATURE_ROLES = ("local", "global", "attention")
SUFFIX = {"image": "deblurred", "local": "local features", "global": "global features", "attention": "attention mask"}


def layer_role(attributes: dict) -> str | None:
    """The role our Deblur widget stored in a layer's metadata (None for other layers)."""
    meta = attributes.get("metadata") or {}
    entry = meta.get(META_KEY) or {}
    return entry.get("role") if isinstance(entry, dict) else None
