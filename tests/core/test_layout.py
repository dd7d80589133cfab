"""The package layout is the architecture: imports point downward, with no cycles, and no module reaches into
another wing's files by path.

Levels: the top-level method and shared modules (``e2llm_lite/*.py``, and the shared ``assets/``) < the wings
``train`` and ``eval`` < the studies (``studies/<name>/``: the miniature, retrieval, the real model, one room
each). A wing may import the top level; a study may import ``train``, ``eval`` and itself, never another
study (what two studies share moves down); the top level imports no wing (``cli.py`` names subcommand modules
only as strings, imported lazily), and ``train`` and ``eval`` never import each other. Checked by parsing every
``import`` in the package.

Paths: a module builds file paths (``Path(...) / "x"``, ``os.path.join``, ``joinpath``, ``importlib.resources``)
only into its own wing's folder or the top level's (``assets/``); a path segment that names another wing or study
folder, or a dotted ``"e2llm_lite.<wing>…"`` resource string, is reported — those references are invisible to the
import graph (a shipped file moved by one wing breaks another at run time).
"""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[2] / "e2llm_lite"
WINGS = ("train", "eval")
STUDIES = tuple(sorted(p.name for p in (PKG / "studies").iterdir() if (p / "__init__.py").is_file()))
FOLDERS = {"train", "eval", "studies", *STUDIES}  # path segments that name a wing's or a study's folder


def _allowed(level: str) -> set[str]:
    """Levels that a module of ``level`` may import."""
    if level in ("top", "train", "eval"):
        return {"top", level}
    if level == "studies":  # the package of the studies: the `e2llm-lite reproduce` dispatcher may name each one
        return {"top", "train", "eval", "studies"} | {f"studies.{s}" for s in STUDIES}
    return {"top", "train", "eval", level}  # a study: the wings and itself


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _level(module: str) -> str:
    """``top``, ``train``, ``eval``, ``studies`` (the package ``e2llm_lite.studies`` itself) or ``studies.<name>``."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in WINGS:
        return parts[1]
    if len(parts) >= 2 and parts[1] == "studies":
        return f"studies.{parts[2]}" if len(parts) >= 3 and parts[2] in STUDIES else "studies"
    return "top"


def _imports(path: pathlib.Path) -> set[str]:
    """Every ``e2llm_lite`` module that ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_name(path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "e2llm_lite"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importer's package
                base = me.split(".")[: len(me.split(".")) - node.level + (1 if path.name == "__init__.py" else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "e2llm_lite":
                continue
            for a in node.names:  # `from e2llm_lite.train import loop` imports the module e2llm_lite.train.loop
                sub = f"{mod}.{a.name}"
                out.add(sub if (PKG.parent / (sub.replace(".", "/") + ".py")).is_file() else mod)
    out.discard(me)
    return out


GRAPH = {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


def test_the_graph_is_not_empty():
    # guards the checks below against a parser that silently finds nothing
    assert "e2llm_lite.studies.miniature.reproduce" in GRAPH and "e2llm_lite.train.loop" in GRAPH["e2llm_lite.studies.miniature.reproduce"]
    assert {"miniature", "retrieval", "real_model"} <= set(STUDIES)
    assert "e2llm_lite.hf" in GRAPH["e2llm_lite.eval.perplexity"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_downward(module):
    lvl = _level(module)
    allowed = _allowed(lvl) | ({"studies"} if lvl.startswith("studies") else set())
    bad = sorted(m for m in GRAPH[module] if _level(m) not in allowed)
    assert not bad, f"{module} (level {lvl!r}) imports {bad}: only {sorted(allowed)} are allowed"


def _rooted_at_the_package(node: ast.AST) -> bool:
    """Whether an expression starts from this file's location (``__file__``) or the package (``"e2llm_lite…"``)."""
    return any((isinstance(n, ast.Name) and n.id == "__file__")
               or (isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("e2llm_lite"))
               for n in ast.walk(node))


def _path_strings(tree: ast.AST):
    """``(lineno, text)`` of every string that builds a path inside the package: an operand of a ``/`` chain that
    starts from ``__file__``, an argument of ``files``/``joinpath``/``os.path.join`` rooted there, and any dotted
    ``"e2llm_lite.…"`` resource name (``importlib.resources.files("e2llm_lite.studies.x")``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _rooted_at_the_package(node):
            yield from ((n.lineno, n.value) for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))
        elif isinstance(node, ast.Call) and _rooted_at_the_package(node):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("join", "joinpath", "files", "Path"):
                for a in node.args:
                    yield from ((n.lineno, n.value) for n in ast.walk(a) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def path_violations(source: str, own: set[str]) -> list[str]:
    """Strings of ``source`` that build a path into a wing's or study's folder other than ``own``."""
    out = []
    for lineno, text in dict.fromkeys(_path_strings(ast.parse(source))):  # a nested `/` chain yields a string twice
        segments = {seg for seg in text.replace("\\", "/").replace(".", "/").split("/") if seg}
        foreign = sorted((segments & FOLDERS) - own)
        if foreign:
            out.append(f"line {lineno}: {text!r} reaches into {foreign}")
    return out


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG.parent)))
def test_no_path_into_another_wing(path):
    if path == PKG / "cli.py":  # the dispatcher names each subcommand's module as a string, by design
        return
    own = set(path.relative_to(PKG).parts[:-1])  # its own wing or study folder (none for the top level)
    assert not path_violations(path.read_text(), own), path


def test_the_path_check_catches_a_reach():
    """The check itself, on the line the top-level ``data.py`` had before the studies got their rooms (the shipped
    base inside the miniature's folder), and on a resource string; a work folder named "train" is no reach."""
    old = 'from pathlib import Path\nASSETS = Path(__file__).resolve().parent / "miniature" / "assets"\n'
    assert path_violations(old, set()) == ["line 2: 'miniature' reaches into ['miniature']"]
    res = 'import importlib.resources\np = importlib.resources.files("e2llm_lite.studies.real_model") / "assets"\n'
    assert path_violations(res, {"studies", "miniature"}) == [
        "line 2: 'e2llm_lite.studies.real_model' reaches into ['real_model']"]
    assert path_violations('import os\nw = os.path.join(work, "train")\n', set()) == []
    assert path_violations('from pathlib import Path\nx = Path(__file__).parent / "assets"\n', set()) == []


def test_no_import_cycle():
    graph = {m: {d for d in deps if d in GRAPH} for m, deps in GRAPH.items()}
    # package __init__ files import their children by design (re-exports); a child importing its
    # package's __init__ is the only way to close a loop through them, so keep them in the graph
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cyc = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cyc))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_readme_example_imports_from_the_top():
    import e2llm_lite

    for name in ("AugmentConfig", "sample", "e2_context", "rope_scale", "scale_for_length", "save_for_scale"):
        assert hasattr(e2llm_lite, name), name
