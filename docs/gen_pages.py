"""Pages made at build time (mkdocs-gen-files; nothing here is committed twice).

* ``notebooks/*.ipynb`` — the six teaching notebooks, copied as they are (stored outputs; mkdocs-jupyter renders
  them without running them);
* ``figures/REPORT*.md`` and ``figures/*.png`` — the studies' generated reports and the figures they and the study
  pages show;
* ``api/`` — one page per module of ``e2llm_lite/`` (``::: e2llm_lite.<module>``, rendered by mkdocstrings from
  the docstrings, read statically by griffe) and ``api/SUMMARY.md``, the navigation mkdocs-literate-nav reads.
  The walk follows the package as it is, so a renamed or new module gets its page without an edit here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "e2llm_lite"


def copy(src: Path, dest: str) -> None:
    with mkdocs_gen_files.open(dest, "wb") as f:
        f.write(src.read_bytes())


for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    copy(nb, f"notebooks/{nb.name}")

for fig in sorted((ROOT / "figures").glob("*.png")) + sorted((ROOT / "figures").glob("REPORT*.md")):
    copy(fig, f"figures/{fig.name}")

def public_api(init: Path) -> list[tuple[str, str]]:
    """``(name, defining module)`` for each name of a package's ``__all__`` imported by its ``__init__.py`` (read with
    ``ast``: nothing is imported)."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    origin = {a.asname or a.name: node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
              for a in node.names}
    names = next((ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "__all__" for t in node.targets)), [])
    return [(n, origin[n]) for n in names if n in origin]


nav = mkdocs_gen_files.Nav()
for path in sorted((ROOT / PACKAGE).rglob("*.py")):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if "__pycache__" in parts or any(p.startswith("_") and p != "__init__" for p in parts):
        continue
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    doc = Path("api", *parts[1:], "index.md") if is_package else Path("api", *parts[1:-1], f"{parts[-1]}.md")
    nav[tuple(parts)] = doc.relative_to("api").as_posix()
    ident = ".".join(parts)
    with mkdocs_gen_files.open(doc, "w") as f:
        # a package's page shows its docstring (the map of its modules); its members have pages of their own
        f.write(f"# `{ident}`\n\n::: {ident}\n" + ("    options:\n      members: false\n" if is_package else ""))
        exported = public_api(path) if is_package else []
        if exported:  # what `from e2llm_lite import …` gives, each linked to where it is defined
            f.write("\n## Public names\n\n| name | defined in |\n|---|---|\n" + "".join(
                f"| `{name}` | [`{module}`][{module}] |\n" for name, module in exported))

with mkdocs_gen_files.open("api/SUMMARY.md", "w") as f:
    f.writelines(nav.build_literate_nav())
