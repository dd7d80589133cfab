"""The classroom edition (``scripts/classroom.py``): one source, two editions, checks that work both ways.

The instructor notebooks end with exercises in Otter Assign's format. The build writes a student edition
(solutions blanked, ``grader.check`` cells kept) and autograder bundles into a temporary folder; then the
exercise section of each edition runs in a real kernel with otter-grader's own checker:

* with the instructor's solutions every question passes;
* with the student's blanks (``...``) every check fails, prints its hint, and no cell raises.

Only the exercise section runs (it is self-contained by design: its first code cell imports what it needs), so no
model is loaded. Nothing is written into the repository.
"""
from __future__ import annotations

import importlib.util
import json
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("classroom", ROOT / "scripts" / "classroom.py")
classroom = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(classroom)

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
PASSED = re.compile(r"^(q\d+) results: All test cases passed!$")


def questions(nb) -> list[str]:
    """Question names of an instructor notebook, in order."""
    names = []
    for c in nb.cells:
        if c.cell_type == "raw" and c.source.startswith("# BEGIN QUESTION"):
            names.append(re.search(r"^name:\s*(\S+)", c.source, re.M).group(1))
    return names


def failure_messages(nb) -> dict[str, list[str]]:
    """Question -> the hints of its tests (read from the student notebook's metadata, where otter keeps them)."""
    tests = nb.metadata["otter"]["tests"]
    return {q: [case.get("failure_message") for suite in t["suites"] for case in suite["cases"]]
            for q, t in tests.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("classroom")
    made = classroom.build(out)
    return out, {m["student"].name: m for m in made}


def run_exercises(nb_path: Path, work: Path):
    """Execute the exercise section of one edition (its cells from the section heading on) in a fresh kernel."""
    nb = nbformat.read(nb_path, as_version=4)
    start = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and c.source.startswith(classroom.SECTION_MARK))
    nb.cells = nb.cells[start:]
    work.mkdir(parents=True)
    nbformat.write(nb, work / nb_path.name)  # otter.Notebook(...) reads the tests from this file's metadata
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    checks = {}
    for c in nb.cells:
        m = re.fullmatch(r'grader\.check\("(q\d+)"\)', c.source.strip()) if c.cell_type == "code" else None
        if m:
            assert not any(o.output_type == "error" for o in c.outputs)
            checks[m.group(1)] = "".join(o.get("data", {}).get("text/plain", "") for o in c.outputs)
    return checks


@pytest.fixture(scope="module")
def ran(built, tmp_path_factory):
    """Both editions of every notebook, run two at a time (each in its own kernel)."""
    out, made = built
    work = tmp_path_factory.mktemp("run")
    jobs = [(name, edition) for name in made for edition in ("autograder", "student")]
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(lambda j: run_exercises(made[j[0]][j[1]], work / f"{j[1]}-{j[0]}"), jobs)
        return dict(zip(jobs, results))


def test_every_notebook_has_three_to_six_questions_with_solutions_and_hinted_tests():
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        names = questions(nb)
        assert 3 <= len(names) <= 6, (name, names)
        assert names == [f"q{i}" for i in range(1, len(names) + 1)], (name, names)
        sources = [c.source for c in nb.cells]
        assert sum(s.startswith("# BEGIN SOLUTION") for s in sources) == len(names), name
        tests = [s for s in sources if s.startswith('""" # BEGIN TEST CONFIG')]
        assert len(tests) >= len(names) and all("failure_message:" in s for s in tests), name
        # the old open-ended list is gone: every exercise now checks itself
        assert not any(c.cell_type == "markdown" and "\n## Exercises\n" in "\n" + c.source for c in nb.cells), name


def test_build_writes_both_editions_and_a_bundle_per_notebook(built):
    out, made = built
    assert sorted(made) == NOTEBOOKS
    for name, m in made.items():
        inst = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        student = nbformat.read(m["student"], as_version=4)
        qs = questions(inst)
        code = [c.source for c in student.cells if c.cell_type == "code"]
        assert [f'grader.check("{q}")' for q in qs] == [s for s in code if s.startswith("grader.check")]
        assert sum(s.startswith(classroom.SETUP_MARK) for s in code) == 1
        assert not any(c.cell_type == "raw" for c in student.cells)  # the otter markup is gone
        # every solution line is blanked in the student edition and kept in the autograder one
        solutions = [ln.split("#")[0].strip() for c in inst.cells if c.cell_type == "code"
                     for ln in c.source.splitlines() if ln.rstrip().endswith("# SOLUTION")]
        student_text = "\n".join(code)
        auto_text = "\n".join(c.source for c in nbformat.read(m["autograder"], as_version=4).cells)
        assert solutions and all(s not in student_text and s in auto_text for s in solutions), name
        assert set(failure_messages(student)) == set(qs)
        with zipfile.ZipFile(m["zip"]) as z:
            assert {f"tests/{q}.py" for q in qs} <= set(z.namelist()), name
    assert not any(p.is_relative_to(ROOT) for m in made.values() for p in m.values())


def test_build_refuses_to_write_into_the_notebooks_folder():
    with pytest.raises(SystemExit, match="inside notebooks"):
        classroom.build(ROOT / "notebooks" / "student")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_solutions_pass_every_check(ran, built, name):
    checks = ran[(name, "autograder")]
    qs = questions(nbformat.read(ROOT / "notebooks" / name, as_version=4))
    assert sorted(checks) == sorted(qs)
    for q, text in checks.items():
        assert PASSED.match(text.strip()), (name, q, text)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_student_blanks_fail_every_check_with_its_hint(ran, built, name):
    checks = ran[(name, "student")]
    hints = failure_messages(nbformat.read(built[1][name]["student"], as_version=4))
    assert sorted(checks) == sorted(hints)
    for q, text in checks.items():
        assert not PASSED.match(text.strip()), (name, q)
        assert "Test case failed" in text, (name, q, text)
        assert all(h and h in text for h in hints[q]), (name, q, text)
        assert "Traceback" not in text.split("message:")[0]  # the check reports; it does not crash
