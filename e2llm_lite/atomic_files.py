"""Atomic file output shared by every module that writes results: JSON, markdown, CSV and figures.

Each writer puts the bytes in a temporary file beside the target and moves it into place with
``os.replace``, so an interrupted run never leaves a half-written result next to finished ones.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "save_json", "load_json", "claim_work_folder", "save_fig"]


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


def claim_work_folder(path: str | os.PathLike, ident: dict, refusal: str) -> None:
    """Tie a work folder to the settings that fill it: write ``ident`` to ``path`` (a JSON file in the folder),
    or raise ``ValueError("work folder <folder> <refusal> (<keys that differ>); …")`` when the file there holds
    other settings — resumed checkpoints and memos of one run must not mix with another's."""
    path = Path(path)
    ident = json.loads(json.dumps(ident))  # tuples -> lists, as stored
    found = load_json(path)
    if found is not None and found != ident:
        diff = sorted(k for k in ident if found.get(k) != ident[k])
        raise ValueError(f"work folder {path.parent} {refusal} ({', '.join(diff)}); pass another --work or delete it")
    save_json(ident, path)


def save_fig(fig, path: str | os.PathLike, dpi: int = 110) -> str:
    """Save a matplotlib figure as PNG atomically, without date/software metadata (same figure, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return atomic_write(path, buf.getvalue())
