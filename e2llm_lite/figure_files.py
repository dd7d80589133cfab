"""Where figures go and how they are written: one saver for every figure of the package, the notebooks and the
studies.

:func:`save_figure` writes a matplotlib figure as PNG atomically (a temporary file moved into place) without
date or software metadata, so the same figure gives the same bytes, and — given the data the figure shows —
that data as JSON beside it (same stem, ``.json``). It takes a path (``figures/fig4.png``) or a plain figure
name (``"fig2_position_indices"``), which goes into :func:`figures_dir`: ``$E2LLM_FIGURES_DIR`` if set, else
the checkout's ``figures/``, else ``./figures`` (e.g. on Colab). ``scripts/regen_figures.py`` regenerates the
notebooks' figures by executing the notebooks that draw them.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from e2llm_lite.atomic_files import atomic_write

__all__ = ["ENV_FIGURES", "repo_root", "figures_dir", "display_path", "save_figure"]

ENV_FIGURES = "E2LLM_FIGURES_DIR"  # environment variable that overrides where figures are written


def repo_root(start: str | os.PathLike | None = None) -> Path | None:
    """The e2llm-lite checkout that contains ``start`` (default: cwd), or None outside one.

    Notebooks run with cwd ``notebooks/`` under nbval and with the repo root elsewhere; walking up to
    the ``pyproject.toml`` that names ``e2llm-lite`` finds the root from either.
    """
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        pp = d / "pyproject.toml"
        if pp.is_file() and 'name = "e2llm-lite"' in pp.read_text(encoding="utf-8", errors="ignore"):
            return d
    return None


def figures_dir(create: bool = True) -> Path:
    """``$E2LLM_FIGURES_DIR`` if set, else ``<repo>/figures``, else ``./figures`` (e.g. on Colab)."""
    env = os.environ.get(ENV_FIGURES)
    root = repo_root()
    d = Path(env) if env else (root / "figures" if root else Path.cwd() / "figures")
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def display_path(path: str | os.PathLike) -> str:
    """A path to print in notebooks: relative to the repo root (or cwd), never a machine path."""
    p = Path(path).resolve()
    for base in (repo_root(), Path.cwd().resolve(), figures_dir(create=False).resolve().parent):
        if base is not None:
            try:
                return p.relative_to(base).as_posix()
            except ValueError:
                pass
    return p.name


def _jsonable(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def save_figure(fig, path: str | os.PathLike, data: Mapping | None = None,
                directory: str | os.PathLike | None = None, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG atomically, without date/software metadata (the same figure gives the same bytes);
    with ``data`` (what the figure shows: arrays, tensors and numbers are converted), also
    ``{"figure": "<name>.png", **data}`` as JSON beside it. Returns the PNG's path.

    ``path``: a file path ending in ``.png`` (written there), or a plain figure name such as
    ``"fig2_position_indices"`` (no folder, no suffix), written as ``<directory>/<name>.png`` — ``directory``
    defaults to :func:`figures_dir`.
    """
    p = Path(path)
    if p.suffix.lower() == ".png":
        if directory is not None:
            raise ValueError(f"give a figure name with directory=, or a path ending in .png without it; got "
                             f"path={str(path)!r} and directory={str(directory)!r}")
        png = p
    else:
        name = str(path)
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise ValueError(f"figure name must be a plain file stem like 'fig2_position_indices' (or a path ending "
                             f"in .png), got {name!r}")
        png = (Path(directory) if directory is not None else figures_dir()) / f"{name}.png"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})  # no Software/date metadata
    atomic_write(png, buf.getvalue())
    if data is not None:
        payload = {"figure": png.name, **_jsonable(dict(data))}
        atomic_write(png.with_suffix(".json"), (json.dumps(payload, indent=1) + "\n").encode())
    return png
