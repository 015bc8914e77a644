"""One line for a notification or stderr: what went wrong while doing what, and what to do about it."""
from __future__ import annotations

from .models import first_line


def describe_error(exc: BaseException, doing: str = "deblurring",
                   oom_advice: str = "choose a smaller tile size (e.g. 256) or the CPU device") -> str:
    """One line for a notification: what went wrong while ``doing`` and, where we know, what to do about it."""
    text = first_line(exc, limit=300)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        return f"Out of memory while {doing}: {oom_advice}."
    if isinstance(exc, (ValueError, OSError)):  # includes CheckpointError: messages already name the file
        return text
    return f"{doing.capitalize()} failed: {type(exc).__name__}: {text}"
