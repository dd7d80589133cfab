"""Numbers in prose come from somewhere; no notebook assert can be skipped; the product does not speak of its makers.

**The numbers rule.** Prose is every notebook's markdown cells, and ``README.md``, the documentation's pages
(``docs/**/*.md``) and ``figures/REPORT*.md`` outside fenced code blocks (tables included). Inline code spans, LaTeX (``$…$``, ``$$…$$``), link targets and
HTML tags are removed first. A paragraph that calls its numbers estimates (the word "estimate"), and the table
right after it, claim no measurement and are skipped.

A number in prose is *checked* when it is

* a decimal with at least 2 significant digits (``49.31``, ``0.989``, ``5.7``, ``7.6e-7``), or
* an integer of 4 or more digits (``1,358``) that is not a power of two (window lengths, vocabularies),
  not a multiple of 1,000 (round settings: ``30,000`` steps) and not a year (1900–2099), or
* a signed percentage (``+19.6 %``, ``−5.2 %``, ``+15 %``).

It is *not checked* when it is an unsigned integer below 1,000 (counts, settings, equation and section
numbers), has one significant digit (``0.5``, ``0.1 ln g``, ``lr 2e-4``), is part of a word, an identifier or a
dotted chain (``E²-32K``, ``Llama-2``, ``4K``, ``fig4``, ``§4.2.3``, ``3.11.7``), follows ``arXiv`` or ``v`` (ids,
versions) or a code span (a package's version: ``llm`` 0.36), or follows ``≤ ≥ < > ±`` (a bound).

A checked number ``x`` shown with ``d`` decimals is *accepted* when one of these holds:

1. a number of the allowed sources, read at ``d`` or more decimals, rounds to ``x`` (a ``K`` / ``M`` / ``B``
   after ``x`` scales it: ``1.38 M`` parameters is 1,377,408);
2. ``x`` is a percentage and ``x / 100``, ``1 + x / 100`` or ``1 − x / 100`` is such a number at ``d + 2``
   decimals (a ratio ``1.150`` shown as ``+15 %``, an exact-match rate ``0.98`` as ``98 %``);
3. the sentence computes it from two other numbers ``a``, ``b`` of the same sentence, and says so: a factor
   (``×22.9``) or any number of a sentence with ``÷`` is ``a / b``; a percentage is ``100·(a / b − 1)``,
   ``100·(1 − a / b)`` or ``100·a / b`` (``35.59 vs 29.76: +19.6 %``); a number right after a ``×`` chain is its
   product (``1,200 steps × 16 × 256 (4.9 M tokens)``). Operands count within half a unit of their last digit;
   a bare ``1`` (``g = 1``) is no operand.

The allowed sources: for a notebook, its stored outputs and the shipped JSON files it cites; for a ``##``
section of ``README.md`` or of a documentation page, the shipped JSON files that section cites; for ``figures/REPORT*.md``, the results it
is generated from (:data:`REPORT_SOURCES`). A JSON file is cited by its path (with any extension:
``benchmarks/family_parity.md`` cites ``family_parity.json``), its file name, its folder, a ``figures/REPORT*.md``
written from it, or a ``<module>.shipped_results()`` call of the module that reads it (:data:`SHIPPED_BY`). A JSON
file contributes its numbers (strings and keys included), the sum of each object of numbers (a total of phases)
and the mean of each column of a matrix (a mean over depths); lists longer than :data:`MAX_LIST` (step-by-step
curves) are left out. The paper's numbers are allowed everywhere: the package's module-level ``PAPER*`` tables
(``report.PAPER``, ``report.PAPER_RATIOS``, ``proof_pile.PAPER_TABLE3``, ``longbench.PAPER_SCORES`` …), which its
own tables print beside ours. There is no allow-list of single numbers.

What the rule cannot see: a stale number that happens to equal another number of its sources (a two-decimal
perplexity of another row, say) passes. Keep the sources narrow: cite the file a number comes from.

**The asserts rule.** In every code cell of every notebook, no ``assert`` sits inside an ``if``, ``try``,
``while``, ``with`` or ``match`` (a false condition, a caught or suppressed exception skips it silently), nor
inside a function or class (it runs only if called): an assert that guards a claim runs whatever the data, and a
missing result fails loudly. ``for`` loops over the notebooks' fixed parameter tuples are allowed.

**The product's words.** What a user reads (README, docs, notebooks, reports, the package and its shipped
results) says what the product does, not which issue, ticket or session asked for it (:data:`WORKPLACE`).
"""
from __future__ import annotations

import ast
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPORTS = sorted((ROOT / "figures").glob("REPORT*.md"))
#: the documentation site's pages (README's prose moved there; pages made at build time are not on disk)
DOCS = sorted((ROOT / "docs").rglob("*.md"))

#: shipped JSON: the results of the studies and the package's copies of them (the tokenizer is not a result)
SHIPPED_GLOBS = ("results/*.json", "results/*/*.json", "e2llm_lite/assets/base/**/*.json",
                 "e2llm_lite/studies/*/assets/**/*.json", "figures/*.json", "benchmarks/*.json")
EXCLUDED = {"e2llm_lite/assets/base/tokenizer.json"}
#: the JSON each generated report is written from
REPORT_SOURCES = {
    "figures/REPORT.md": "results/*.json",
    "figures/REPORT_real.md": "results/real/*.json",
    "figures/REPORT_retrieval.md": "results/retrieval/*.json",
}
#: ``<module>.shipped_results()`` reads these files
SHIPPED_BY = {
    "reproduce": "e2llm_lite/studies/miniature/assets/full/*.json",
    "real_model": "e2llm_lite/studies/real_model/assets/real_profile.json",
    "real_profile": "e2llm_lite/studies/real_model/assets/real_profile.json",  # the notebooks' name for real_model
    "retrieval": "e2llm_lite/studies/retrieval/assets/*.json",
    "retrieval_base": "e2llm_lite/studies/retrieval/assets/*.json",  # the notebooks' name for the retrieval study
}
#: longer JSON lists are step-by-step curves or per-token data, not numbers that prose quotes
MAX_LIST = 40
#: the package's modules whose ``PAPER*`` constants transcribe the paper
PAPER_MODULES = ("e2llm_lite.studies.miniature.report", "e2llm_lite.eval.proof_pile", "e2llm_lite.eval.longbench",
                 "e2llm_lite.train.distributed")

CODE = "\u2039code\u203a"  # what a code span becomes: "`llm` 0.36" reads as a version
# a number in prose: optional sign, digits with optional thousands commas, optional decimals / exponent
_NUM = re.compile(r"(?P<sign>[+\-−]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?(?P<exp>e[+\-−]?\d+)?")
_ANY_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[+\-−]?\d+)?")


# --- reading numbers ------------------------------------------------------------------------------------


def _value(text: str) -> tuple[float, int]:
    """``(|value|, decimals)`` of a number's text (``7.6e-6``: 7 decimals)."""
    s = text.replace(",", "").replace("−", "-").lstrip("+-")
    mant, _, exp = s.partition("e")
    dec = (len(mant.split(".")[1]) if "." in mant else 0) - int(exp or 0)
    return abs(float(s)), dec


def numbers_in_text(text: str) -> set[tuple[float, int]]:
    """Every number of a source text (stored outputs, a JSON string), as ``(value, decimals)``."""
    out = set()
    for m in _ANY_NUM.finditer(text):
        try:
            out.add(_value(m.group(0).rstrip(",").rstrip("e")))
        except ValueError:
            pass
    return out


def numbers_in_json(obj, out: set | None = None) -> set[tuple[float, int]]:
    """Every number of a JSON value (keys and strings included) at full precision, plus the sum of every object
    of numbers (a total of phases) and the mean of every column of a list of equal-length number lists (a mean
    over depths). Lists longer than :data:`MAX_LIST` (step-by-step curves, per-token data) are left out."""
    out = set() if out is None else out
    if isinstance(obj, bool) or obj is None:
        return out
    if isinstance(obj, (int, float)):
        out.add((abs(float(obj)), 12 if isinstance(obj, float) else 0))
        return out
    if isinstance(obj, str):
        out |= numbers_in_text(obj)
        return out
    vals = list(obj.values()) if isinstance(obj, dict) else list(obj)
    if isinstance(obj, dict):
        for k in obj:
            out |= numbers_in_text(str(k))
    if len(vals) > MAX_LIST:
        return out
    nums = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if isinstance(obj, dict) and len(nums) == len(vals) > 1:
        out.add((abs(sum(nums)), 12))
    rows = [r for r in vals if isinstance(r, list) and r and all(isinstance(v, (int, float)) for v in r)]
    if len(rows) == len(vals) > 1 and len({len(r) for r in rows}) == 1:
        out |= {(abs(sum(float(r[j]) for r in rows)) / len(rows), 12) for j in range(len(rows[0]))}
    for v in vals:
        numbers_in_json(v, out)
    return out


_STRIP = [
    (re.compile(r"\$\$.*?\$\$", re.S), " "),  # display LaTeX
    (re.compile(r"\$[^$\n]+\$"), " "),  # inline LaTeX
    (re.compile(r"``[^`]+``|`[^`\n]+`"), CODE),  # code spans
    (re.compile(r"\]\([^)]*\)"), "]"),  # link targets
    (re.compile(r"<[^>\n]+>"), " "),  # HTML tags
]


def prose(text: str) -> str:
    """Markdown without fenced code blocks, code spans, LaTeX, link targets and HTML tags."""
    text = re.sub(r"^```.*?^```", " ", text, flags=re.S | re.M)
    for pat, rep in _STRIP:
        text = pat.sub(rep, text)
    return text


def sentences(text: str) -> list[str]:
    """Sentences of prose: split at a full stop or semicolon followed by a space, and at line breaks that end
    a paragraph, a list item or a table row. A paragraph that calls its numbers estimates, and the table right
    after it, are left out: they claim no measurement."""
    out, skip = [], False
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.)\s)|\n(?=\|)", text):
        is_row = block.lstrip().startswith("|")
        if not is_row:
            skip = bool(re.search(r"\bestimate", block, re.I))
        if skip:
            continue
        out += [s for s in re.split(r"(?<=[.;])\s+(?=\S)", block.replace("\n", " ")) if s.strip()]
    return out


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


_UNIT = {"K": 3, "M": 6, "B": 9}


def checked_numbers(sentence: str) -> list[dict]:
    """The numbers of one sentence, each ``{"text", "value", "dec", "pct", "unit", "checked"}``; ``unit`` is the
    power of ten of a ``K`` / ``M`` / ``B`` after it (``1.38 M`` parameters)."""
    out = []
    for m in _NUM.finditer(sentence):
        a, b = m.span()
        text, sign, dec, exp = m.group(0), m.group("sign"), m.group("dec") or "", m.group("exp")
        prev, after = sentence[a - 1:a], sentence[b:b + 4]
        before = sentence[:a].rstrip()
        unit = re.match(r"\s?([KMB])(?![A-Za-z])", after)
        num = {"text": text, "pct": bool(re.match(r"\s?%", after)), "unit": _UNIT[unit.group(1)] if unit else 0,
               "start": a, "end": b}
        num["value"], num["dec"] = _value(text)
        digits = re.sub(r"\D", "", m.group("int") + dec).lstrip("0")
        if re.match(r"[\w.\-/^²§]", prev):
            checked = False  # part of an identifier (E²-32K, fig4, Llama-2) or a chain (§4.2.3, 3.11.7)
        elif re.match(r"[A-Za-z_]|\.\d", after) and not unit:
            checked = False  # 4K, 16L, 5th, 3.11.7
        elif re.search(r"(arXiv|\bv|[≤≥<>±]|" + CODE + r")$", before):
            checked = False  # an id, a version ("v2", "`llm` 0.36") or a bound ("≤ 1.05", "±1 %")
        elif dec or exp:
            checked = len(digits) >= 2  # significant digits, trailing zeros included (16.0)
        elif sign and num["pct"]:
            checked = True
        else:
            n = int(m.group("int").replace(",", ""))
            checked = n >= 1000 and not _is_power_of_two(n) and n % 1000 != 0 and not 1900 <= n <= 2099
        num["checked"] = checked
        out.append(num)
    return out


# --- sources -------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def shipped_json() -> dict[str, frozenset]:
    """``{path relative to the root: numbers}`` of every shipped JSON file."""
    out = {}
    for pattern in SHIPPED_GLOBS:
        for p in sorted(ROOT.glob(pattern)):
            rel = p.relative_to(ROOT).as_posix()
            if rel not in EXCLUDED and rel not in out:
                out[rel] = frozenset(numbers_in_json(json.loads(p.read_text(encoding="utf-8"))))
    return out


@lru_cache(maxsize=None)
def paper_numbers() -> frozenset:
    """The numbers of the package's transcriptions of the paper (module-level ``PAPER*`` constants)."""
    import importlib

    out = set()
    for name in PAPER_MODULES:
        mod = importlib.import_module(name)
        for attr in dir(mod):
            if attr.startswith("PAPER"):
                val = getattr(mod, attr)
                if isinstance(val, (dict, list, tuple, int, float)):
                    numbers_in_json(json.loads(json.dumps(val, default=lambda o: None)), out)
    return frozenset(out)


def cited_json(text: str) -> set[str]:
    """The shipped JSON files a text cites: by path (``benchmarks/family_parity.md`` cites its ``.json``), by file
    name, by folder, by a ``figures/REPORT*.md`` written from it, or by a ``<module>.shipped_results()`` call."""
    files = shipped_json()
    out = set()
    for rel in files:
        p = Path(rel)
        folder = p.parent.as_posix() + "/"
        if (rel[: -len(".json")] + "." in text or re.search(rf"(?<![\w/.-]){re.escape(p.name)}", text)
                or (folder not in ("results/", "figures/", "benchmarks/") and folder in text)):
            out.add(rel)
    for report, pattern in REPORT_SOURCES.items():
        if report in text:
            out |= {p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern)} & set(files)
    for module, pattern in SHIPPED_BY.items():
        if re.search(rf"\b{module}\.shipped_results\(", text):
            out |= {p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern)} & set(files)
    return out


def pool_of(files, extra=()) -> set[tuple[float, int]]:
    pool = set(paper_numbers()) | set(extra)
    for rel in files:
        pool |= shipped_json()[rel]
    return pool


# --- the check -----------------------------------------------------------------------------------------


def _rounds_to(x: float, dec: int, pool) -> bool:
    tol = 0.5 * 10.0 ** -dec * (1 + 1e-9) + 1e-12
    return any(d >= dec and abs(v - x) <= tol for v, d in pool)


def _half(n: dict) -> float:
    """Half a unit of the last shown digit: how far the shown number may be from the value it rounds."""
    return 0.5 * 10.0 ** (n["unit"] - n["dec"])


def _computed(num: dict, nums: list[dict], sentence: str) -> bool:
    """Rule 3: the sentence computes ``num`` from other numbers of the same sentence, each operand taken within
    half a unit of its last shown digit (interval arithmetic). Only marked computations count: a factor
    (``×22.9``, ``2.6×``) or any number of a sentence that says ``÷`` is a ratio ``a / b``; a percentage is
    ``100·(a / b − 1)``, ``100·(1 − a / b)`` or ``100·a / b``; a number after a ``×`` chain
    (``1,200 steps × 16 × 256 (4.9 M tokens)``) is its product."""
    x, ex = num["value"] * 10.0 ** num["unit"], _half(num)
    lo_x, hi_x = x - ex, x + ex
    i = nums.index(num)

    def meets(lo_hi):
        return lo_hi[0] <= hi_x and lo_hi[1] >= lo_x

    def ratio(a, b):
        A, ea, B, eb = a["value"] * 10.0 ** a["unit"], _half(a), b["value"] * 10.0 ** b["unit"], _half(b)
        return ((A - ea) / (B + eb), (A + ea) / (B - eb)) if B - eb > 0 else (float("inf"), float("inf"))

    ops = [n for n in nums if n is not num and n["value"] > 0 and (n["value"], n["dec"]) != (1.0, 0)]  # not "g = 1"
    left, right = sentence[:num["start"]], sentence[num["end"]:]
    if "÷" in sentence or re.search(r"×\s*$", left) or re.match(r"\s?×", right):
        return any(meets(ratio(a, b)) for a in ops for b in ops if a is not b)
    if num["pct"]:
        for a in ops:
            for b in ops:
                if a is not b:
                    lo, hi = ratio(a, b)
                    if meets((100 * (lo - 1), 100 * (hi - 1))) or meets((100 * (1 - hi), 100 * (1 - lo))) or \
                            meets((100 * lo, 100 * hi)):
                        return True
    chain = [nums[i - 1]] if i else []  # the numbers joined by "×" right before it
    for j in range(i - 2, -1, -1):
        if not re.fullmatch(r"\s*(?:[A-Za-z]+\s*)?×\s*", sentence[nums[j]["end"]:nums[j + 1]["start"]]):
            break
        chain.insert(0, nums[j])
    return len(chain) > 1 and meets(_product(chain))


def _product(chain: list[dict]) -> tuple[float, float]:
    lo = hi = 1.0
    for n in chain:
        v, e = n["value"] * 10.0 ** n["unit"], _half(n) if n["dec"] else 0.0
        lo, hi = lo * (v - e), hi * (v + e)
    return lo, hi


def accepted(num: dict, nums: list[dict], pool, sentence: str = "") -> bool:
    """Rules 1–3 of the module docstring."""
    x, dec = num["value"], num["dec"]
    if _rounds_to(x, dec, pool) or (num["unit"] and _rounds_to(x * 10.0 ** num["unit"], dec - num["unit"], pool)):
        return True
    if num["pct"]:
        for y in (x / 100, 1 + x / 100, 1 - x / 100):
            if y > 0 and _rounds_to(y, dec + 2, pool):
                return True
    return _computed(num, nums, sentence)


def unsupported(text: str, pool) -> list[str]:
    """``"<number> in: <sentence>"`` for every checked number of ``text`` that no rule accepts."""
    bad = []
    for s in sentences(prose(text)):
        nums = checked_numbers(s)
        for n in nums:
            if n["checked"] and not accepted(n, nums, pool, s):
                bad.append(f"{n['text']}{' %' if n['pct'] else ''} in: {s.strip()[:220]}")
    return bad


def notebook_findings(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    outputs, sources = [], []
    for cell in nb["cells"]:
        sources.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            outputs.append("".join(out.get("text", "")))
            for kind, val in out.get("data", {}).items():
                if kind.startswith("text/"):
                    outputs.append("".join(val) if isinstance(val, list) else str(val))
    pool = pool_of(cited_json("\n".join(sources)), numbers_in_text("\n".join(outputs)))
    bad = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            bad += [f"cell {i}: {b}" for b in unsupported("".join(cell["source"]), pool)]
    return bad


def markdown_findings(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(ROOT).as_posix()
    if rel in REPORT_SOURCES:
        files = {p.relative_to(ROOT).as_posix() for p in ROOT.glob(REPORT_SOURCES[rel])} & set(shipped_json())
        return unsupported(text, pool_of(files))
    bad = []
    for section in re.split(r"\n(?=## )", re.sub(r"^```.*?^```", " ", text, flags=re.S | re.M)):
        title = section.splitlines()[0] if section.strip() else ""
        bad += [f"{title[:40]!r}: {b}" for b in unsupported(section, pool_of(cited_json(section)))]
    return bad


# --- tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_prose_numbers_come_from_its_outputs_or_cited_results(path):
    bad = notebook_findings(path)
    assert not bad, "numbers in markdown that no output or cited result shows:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS, *REPORTS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_markdown_prose_numbers_come_from_cited_results(path):
    bad = markdown_findings(path)
    assert not bad, "numbers in prose that no cited result shows:\n" + "\n".join(bad)


def test_the_number_rules_catch_what_they_should():
    pool = {(49.9812, 12), (50.8834, 12), (1.150, 3), (0.98, 2), (2.92, 2), (1377408.0, 0)}
    assert unsupported("At 8,192 tokens g = 24 reads 49.98 vs 50.88.", pool) == []
    assert [b.split(" in:")[0] for b in unsupported("It reads 49.31 vs 50.44 and 46.8.", pool)] == \
        ["49.31", "50.44", "46.8"]
    assert unsupported("E² pays +15 % at g = 8; it retrieves 98 % of keys; a 1.38 M-parameter model.", pool) == []
    # rule 3: only a computation the sentence marks, from its own numbers
    seen = {(35.59, 2), (29.76, 2), (5.37, 2), (122.62, 2), (5.70, 2), (1200.0, 0)}
    assert unsupported("E² pays +19.6 % over the control (35.59 vs 29.76).", seen) == []
    assert unsupported("E² pays +21.6 % over the control (35.59 vs 29.76).", seen) != []
    assert unsupported("It goes 5.37 → 122.62 (×22.9); cost 5.70 ÷ 5.37: 1.063.", seen) == []
    assert unsupported("It goes 5.37 → 122.62 (×23.9).", seen) != []
    assert unsupported("It goes 5.37 → 122.62, then 22.9.", seen) != []  # no "×", "÷" or "%": not a computation
    assert unsupported("1,200 steps × 16 × 256 (4.9 M tokens).", seen) == []
    assert unsupported("1,200 steps × 16 × 256 (5.9 M tokens).", seen) != []
    assert unsupported("Full run: 1,358 s.", pool) != [] and unsupported("Full run: 1,358 s.", {(1357.9, 12)}) == []
    # not checked: counts, settings, powers of two, sections, ids, versions, thresholds, code, LaTeX, identifiers
    skipped = ("150 steps of 8 × 256 tokens, 30,000 iterations, 4,096 tokens, §4.2.3, arXiv 2401.06951, "
               "torch 2.13.0, `llm` 0.36, closed (≤ 1.05), `lr = 0.0123`, $\\theta = 0.0123$, E²-32K and Llama-2 at "
               "4K in 2024, 0.1 ln g, lr 2e-4.")
    assert unsupported(skipped, set()) == []
    assert unsupported("The planner's estimate: 16.0 GiB.\n\n| E² | 16.0 |\n| PI | 26.1 |", set()) == []


def test_json_sources_read_values_totals_and_column_means():
    got = numbers_in_json({"wall_s": {"a": 1.5, "b": 2.25}, "nll": [[1.0, 2.0], [3.0, 5.0]], "key": "31665",
                           "curve": list(range(MAX_LIST + 1))})
    assert {(1.5, 12), (3.75, 12), (2.0, 12), (3.5, 12), (31665.0, 0)} <= got  # a total, the column means
    assert (float(MAX_LIST), 0) not in got  # a step-by-step curve is no source


# --- asserts that cannot be skipped ---------------------------------------------------------------------

#: statements that can skip the asserts inside them: a false condition, a caught exception, a context manager that
#: suppresses it, a function or class never called. ``for`` loops are not listed: the notebooks loop over their fixed,
#: non-empty parameter tuples (``MULTS``, ``FAMILIES``, literal lists), which only an edit could empty.
_GUARDS = (ast.If, ast.Try, ast.While, ast.With, ast.AsyncWith, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
           ast.Match) + ((ast.TryStar,) if hasattr(ast, "TryStar") else ())


def _cell_tree(source: str) -> ast.Module:
    """A code cell's syntax tree; IPython magics and shell lines become ``pass``."""
    lines = [re.sub(r"^(\s*)[%!].*", r"\1pass", ln) for ln in source.splitlines()]
    return ast.parse("\n".join(lines))


def skippable_asserts(source: str) -> list[tuple[int, str]]:
    """``(line, enclosing statement)`` for every ``assert`` nested in a statement that can skip it."""
    out = []

    def walk(node, guard):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Assert) and guard is not None:
                out.append((child.lineno, type(guard).__name__))
            walk(child, child if isinstance(child, _GUARDS) else guard)

    walk(_cell_tree(source), None)
    return out


def test_asserts_sit_at_the_top_level_of_their_cell():
    bad = []
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "code":
                bad += [f"{path.name} cell {i} line {ln}: assert inside {kind}"
                        for ln, kind in skippable_asserts("".join(cell["source"]))]
    assert not bad, "asserts that a condition can skip (make the missing case fail loudly):\n" + "\n".join(bad)


def test_the_assert_rule_catches_what_it_should():
    assert skippable_asserts("x = 1\nassert x\nfor i in []:\n    pass") == []
    assert skippable_asserts("%matplotlib inline\nassert all(v > 0 for v in [1])") == []
    assert [k for _, k in skippable_asserts("if res is not None:\n    assert res['a'] < 1")] == ["If"]
    assert [k for _, k in skippable_asserts("try:\n    assert f()\nexcept KeyError:\n    pass")] == ["Try"]
    assert [k for _, k in skippable_asserts("for r in rows:\n    if r:\n        assert r > 0")] == ["If"]
    assert [k for _, k in skippable_asserts("with suppress(KeyError):\n    assert d['a']")] == ["With"]
    assert [k for _, k in skippable_asserts("def check(x):\n    assert x")] == ["FunctionDef"]


# --- the product speaks of itself, not of how it was made ------------------------------------------------

#: prose of the product: what a user reads (the generated reports and the shipped results' notes included)
PRODUCT_TEXT = ("README.md", "docs/**/*.md", "figures/*.md", "notebooks/*.ipynb", "e2llm_lite/**/*.py",
                "e2llm_lite/**/*.md", "e2llm_lite/**/*.json", "results/**/*.json", "benchmarks/*.md", "scripts/*.py")
#: "issue", "session", "ticket": words of the workplace that made the product, not of the product. A GitHub
#: issue a user may open ("an issue or a pull request") or an upstream project's numbered issue is fine.
WORKPLACE = re.compile(r"\b(?:issues?|sessions?|tickets?)\b(?! or a pull request| #\d)", re.I)


def workplace_words(text: str) -> list[str]:
    return [text[max(0, m.start() - 60):m.end() + 30].replace("\n", " ") for m in WORKPLACE.finditer(text)]


def test_the_product_does_not_speak_of_issues_or_sessions():
    bad = []
    for pattern in PRODUCT_TEXT:
        for p in sorted(ROOT.glob(pattern)):
            if p.is_file() and p.name != "tokenizer.json":
                bad += [f"{p.relative_to(ROOT)}: …{w}…" for w in workplace_words(p.read_text(encoding="utf-8"))]
    assert not bad, "say what the product does, not which request asked for it:\n" + "\n".join(bad)


def test_the_workplace_rule_catches_what_it_should():
    assert workplace_words("about an hour (the issue's 60-minute cap)") and workplace_words("a verdict per claim of the issue")
    assert workplace_words("Please send the file back (an issue or a pull request)") == []


if __name__ == "__main__":  # list every finding: python tests/test_prose_numbers.py
    for p in NOTEBOOKS:
        for b in notebook_findings(p):
            print(f"{p.name}: {b}")
    for p in [ROOT / "README.md", *DOCS, *REPORTS]:
        for b in markdown_findings(p):
            print(f"{p.relative_to(ROOT)}: {b}")
