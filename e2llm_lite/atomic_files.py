"""Atomic file output shared by every module that writes results: JSON, markdown, CSV (and, through
:func:`e2llm_lite.figure_files.save_figure`, figures), and the JSON reader that pairs with :func:`save_json`.

Each writer puts the bytes in a temporary file beside the target and moves it into place with
``os.replace``, so an interrupted run never leaves a half-written result next to finished ones.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "save_json", "load_json"]


def atomic_write(path: str | os.PathLike, data: str | bytes) -> str:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return str(path)


def save_json(obj, path: str | os.PathLike, indent: int = 2) -> str:
    """Write ``obj`` as JSON (UTF-8, trailing newline) atomically."""
    return atomic_write(path, json.dumps(obj, indent=indent) + "\n")


def load_json(path: str | os.PathLike):
    """The JSON in ``path``, or None when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

