#!/usr/bin/env python
"""The classroom edition: student notebooks and autograder bundles, built from the instructor notebooks.

    python scripts/classroom.py build --out DIR               # every notebook with exercises
    python scripts/classroom.py build --out DIR --only 01_rope_math.ipynb

The notebooks in ``notebooks/`` are the instructor edition: each ends with an exercise section in Otter Assign's
format (raw cells ``# ASSIGNMENT CONFIG``, ``# BEGIN QUESTION`` … ``# END QUESTION``, solution cells marked
``# SOLUTION``, test cells between ``# BEGIN TESTS`` and ``# END TESTS``). This script runs ``otter assign`` on
each of them (otter-grader, the ``classroom`` extra; no Docker is involved) and writes

* ``DIR/student/<notebook>``: solutions replaced by ``...``, a ``grader.check("q…")`` cell after each question,
  the tests a student may see kept in the notebook's metadata, and an Otter set-up cell at the start of the
  exercise section (it installs otter-grader where it is missing, e.g. on Colab);
* ``DIR/autograder/<notebook>``: the same with the solutions, and ``DIR/autograder/<stem>-autograder.zip``, the
  bundle ``otter grade`` (or Gradescope) grades submissions with.

Nothing is written into the checkout; ``DIR`` must not be inside ``notebooks/``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CONFIG_MARK = "# ASSIGNMENT CONFIG"
#: the markdown heading that opens every notebook's exercise section
SECTION_MARK = "## Exercises that check themselves"
SETUP_MARK = "# Otter set-up: the checks of this edition run with otter-grader."


def has_exercises(nb_path: Path) -> bool:
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    return any(c["cell_type"] == "raw" and "".join(c["source"]).startswith(CONFIG_MARK) for c in cells)


def setup_cell(nb_name: str) -> dict:
    source = (f"{SETUP_MARK}\n"
              "import importlib.util\n\n"
              "if importlib.util.find_spec(\"otter\") is None:\n"
              "    %pip install -q \"otter-grader>=7,<8\"\n"
              "import otter\n\n"
              f"grader = otter.Notebook({nb_name!r})")
    return {"cell_type": "code", "execution_count": None, "id": "otter-setup", "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def add_setup_cell(nb_path: Path) -> None:
    """Put the Otter set-up cell right after the exercise section's heading."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    at = next(i for i, c in enumerate(cells)
              if c["cell_type"] == "markdown" and "".join(c["source"]).startswith(SECTION_MARK))
    cells.insert(at + 1, setup_cell(nb_path.name))
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def assign(master: Path, out: Path) -> dict[str, Path]:
    """``otter assign`` one instructor notebook; returns the paths it produced under ``out``."""
    from otter.assign import main as otter_assign  # the `classroom` extra

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(master, work / master.name)  # otter assign reads the master beside its result folder
        with contextlib.redirect_stdout(io.StringIO()):
            otter_assign(str(work / master.name), str(work / "dist"), no_pdfs=True, no_run_tests=True)
        student, autograder = out / "student", out / "autograder"
        student.mkdir(parents=True, exist_ok=True)
        autograder.mkdir(parents=True, exist_ok=True)
        made = {"student": student / master.name, "autograder": autograder / master.name,
                "zip": autograder / f"{master.stem}-autograder.zip"}
        shutil.copy(work / "dist" / "student" / master.name, made["student"])
        shutil.copy(work / "dist" / "autograder" / master.name, made["autograder"])
        (bundle,) = (work / "dist" / "autograder").glob("*-autograder_*.zip")
        shutil.copy(bundle, made["zip"])
    for edition in ("student", "autograder"):
        add_setup_cell(made[edition])
    return made


def build(out: Path, only: list[str] | None = None) -> list[dict[str, Path]]:
    out = Path(out).resolve()
    if out == NOTEBOOKS or NOTEBOOKS in out.parents:
        raise SystemExit(f"--out {out} is inside notebooks/: pick a folder outside the instructor notebooks")
    masters = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if has_exercises(p))
    if only:
        unknown = set(only) - {p.name for p in masters}
        if unknown:
            raise SystemExit(f"no exercise section in: {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(p.name for p in masters)}")
        masters = [p for p in masters if p.name in only]
    return [assign(m, out) for m in masters]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the student edition and the autograder bundles into --out")
    b.add_argument("--out", required=True, type=Path, help="output folder (created; not inside notebooks/)")
    b.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="notebook file names, e.g. 01_rope_math.ipynb")
    args = p.parse_args(argv)
    made = build(args.out, args.only)
    for m in made:
        print(f"{m['student'].name}: student {m['student']}, autograder {m['zip']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
