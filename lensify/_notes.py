"""Notes on exceptions: where in a tree an error happened."""

from __future__ import annotations

__all__ = ["add_note"]


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``; on Python 3.10 the note is kept in ``__notes__`` alone."""
    if hasattr(error, "add_note"):
        error.add_note(note)
        return
    # An exception's own attributes live in its __dict__, where 3.11 keeps __notes__.
    error.__dict__.setdefault("__notes__", []).append(note)
