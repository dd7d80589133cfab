#!/usr/bin/env python
"""Regenerate every figure of the teaching notebooks with one command.

    python scripts/regen_figures.py            # figures/fig2_*, fig3_*, nb01_*, nb02_* (+ JSON beside each)
    python scripts/regen_figures.py --out /tmp/figs --inplace

The notebooks are the single source of each figure's parameters, so this script executes them
(``nbclient``, the engine behind ``jupyter nbconvert --execute``) rather than repeating their code.
Each figure is written by :func:`e2llm_lite.figure_files.save_figure` as ``<name>.png`` + ``<name>.json``
(the data shown). ``--inplace`` also stores the fresh outputs in the notebooks (what strict
``pytest --nbval`` replays); without it the notebooks on disk are left untouched.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_rope_math.ipynb", "02_position_indices.ipynb")  # the notebooks whose figures we own
FIGURE_PREFIXES = ("fig2_", "fig3_", "nb01_", "nb02_")


def run_notebook(path: Path, timeout: int = 600):
    """Execute one notebook top to bottom in its own directory; return (wall seconds, executed notebook)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0, nb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="figure directory (default: <repo>/figures)")
    p.add_argument("--inplace", action="store_true", help="also store the fresh outputs in the notebooks")
    p.add_argument("--only", choices=NOTEBOOKS, action="append", help="run only this notebook (repeatable)")
    args = p.parse_args(argv)

    out = (args.out or ROOT / "figures").resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["E2LLM_FIGURES_DIR"] = str(out)  # read by e2llm_lite.figure_files.figures_dir in the kernels
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    before = {f: f.stat().st_mtime_ns for f in out.iterdir()}

    import nbformat

    for name in args.only or NOTEBOOKS:
        path = ROOT / "notebooks" / name
        seconds, nb = run_notebook(path)
        print(f"{name}: executed in {seconds:.1f} s")
        if args.inplace:
            nbformat.write(nb, path)
            print(f"  outputs stored in notebooks/{name}")

    fresh = sorted(f for f in out.iterdir() if f.name.startswith(FIGURE_PREFIXES)
                   and before.get(f) != f.stat().st_mtime_ns)
    for f in fresh:
        print(f"  wrote {f.relative_to(ROOT) if f.is_relative_to(ROOT) else f} ({f.stat().st_size // 1024} KiB)")
    if not fresh:
        print("no figure was written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
