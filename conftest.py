"""Test-session guards for the whole suite (tests/ and the nbval replay of notebooks/).

1. Figures written while testing go to a temporary folder: ``E2LLM_FIGURES_DIR`` (read by
   :func:`e2llm_lite.pictures.figures_dir`, inherited by the notebook kernels that nbval starts) points
   at ``<tmp>/figures``, so printed paths still read ``figures/<name>.png`` and no tracked file changes.
2. The session fails when it changed the working tree: ``git status`` and the bytes of every file it
   lists are recorded at session start and compared at the end (a file that was already modified
   before the session and is rewritten again is caught by its hash). Strict — a failed session — under
   CI (``CI`` set, as ``.ci/run`` runs) or with ``E2LLM_STRICT_WORKTREE=1``; otherwise a red warning,
   since an editor saving a file during a local run would change the tree too.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
_SNAPSHOT: dict | None = None


def snapshot(root: Path) -> dict:
    """``{path: sha256 of its bytes (or "<deleted>")}`` for every path ``git status`` lists (untracked files
    included, ignored ones not), plus the ``git status`` text itself; ``{"error": …}`` outside a git work tree."""
    try:
        out = subprocess.run(["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"], cwd=root,
                             capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as e:
        return {"error": str(e)}
    files, entries = {}, [e for e in out.split("\0") if e]
    i = 0
    while i < len(entries):
        status, path = entries[i][:2], entries[i][3:]
        i += 2 if status[0] in "RC" else 1  # a rename is followed by its old path
        p = root / path
        files[path] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<deleted or folder>"
    return {"status": out, "files": files}


def changes(before: dict, after: dict) -> list[str]:
    """Paths whose status or bytes differ between two snapshots (sorted)."""
    a, b = before.get("files", {}), after.get("files", {})
    return sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))


def pytest_configure(config):
    if "E2LLM_FIGURES_DIR" not in os.environ:
        d = Path(tempfile.mkdtemp(prefix="e2llm-test-")) / "figures"
        d.mkdir()
        os.environ["E2LLM_FIGURES_DIR"] = str(d)


def pytest_sessionstart(session):
    global _SNAPSHOT
    _SNAPSHOT = snapshot(ROOT)


def pytest_sessionfinish(session, exitstatus):
    if _SNAPSHOT is None or _SNAPSHOT.get("error"):
        return
    changed = changes(_SNAPSHOT, snapshot(ROOT))
    if changed:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = "the test session changed the working tree (tests must write to tmp_path): " + ", ".join(changed)
        if tr is not None:
            tr.write("\n" + msg + "\n", red=True)
        else:  # pragma: no cover
            print(msg)
        strict = os.environ.get("CI", "") not in ("", "0", "false") or os.environ.get("E2LLM_STRICT_WORKTREE") == "1"
        if strict and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
