"""A work folder belongs to one set of settings: resumed checkpoints and memos of one run must not mix with
another's.

:func:`claim_work_folder` ties a folder to the settings that fill it (a JSON file inside it) and refuses, with
one line naming the settings that differ, a folder that holds another run's. The studies' runners call it
before their first phase (``e2llm-lite reproduce``, ``--only retrieval``, ``--profile real``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from e2llm_lite.atomic_files import load_json, save_json

__all__ = ["claim_work_folder"]


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
