"""The package layout is the architecture: imports point downward, with no cycles.

Levels: the top-level method and shared modules (``e2llm_lite/*.py``) < the wings ``train`` and ``eval``
< ``miniature``. A wing may import the top level; ``miniature`` may import ``train`` and ``eval``; the
top level imports no wing (``cli.py`` names subcommand modules only as strings, imported lazily), and
``train`` and ``eval`` never import each other. Checked by parsing every ``import`` in the package.
"""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[2] / "e2llm_lite"
WINGS = ("train", "eval", "miniature")
ALLOWED = {  # importer's level -> levels it may import
    "top": {"top"},
    "train": {"top", "train"},
    "eval": {"top", "eval"},
    "miniature": {"top", "train", "eval", "miniature"},
}


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _level(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in WINGS) else "top"


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
    assert "e2llm_lite.miniature.reproduce" in GRAPH and "e2llm_lite.train.loop" in GRAPH["e2llm_lite.miniature.reproduce"]
    assert "e2llm_lite.hf" in GRAPH["e2llm_lite.eval.perplexity"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_downward(module):
    lvl = _level(module)
    bad = sorted(m for m in GRAPH[module] if _level(m) not in ALLOWED[lvl])
    assert not bad, f"{module} (level {lvl!r}) imports {bad}: only {sorted(ALLOWED[lvl])} are allowed"


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
