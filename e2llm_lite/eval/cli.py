r"""``e2llm-lite eval``: sliding-window perplexity, passkey retrieval and needle-in-a-haystack.

Examples::

    # Table 3 in miniature: one model, three RoPE scales, disjoint windows on held-out stdlib files
    e2llm-lite eval --model runs/quick/work/models/e2.safetensors --task ppl --lengths 256,512,1024,2048 \
        --g none,auto --out out/ppl

    # the paper's protocol on a GPU: proof-pile, stride 256, g = 8 (E²-LLM-32K)
    e2llm-lite eval --model ./e2llm-7b --task ppl --data hoskinson-center/proof-pile --hf-split test \
        --n-docs 128 --lengths 4096,8192,16384,32768 --stride 256 --g 8 --batch-size 1 --out out/t3

    # Fig. 6: exact-match retrieval over depths x lengths
    e2llm-lite eval --model runs/quick/work/models/e2.safetensors --task passkey --style miniature \
        --lengths 256,1024 --out out/pk
    e2llm-lite eval --model meta-llama/Llama-2-7b-hf --task needle --lengths 4096,8192 --out out/nh

    # the paper's benchmarks (the `bench` extra, docs/benchmarks.md): LongBench Tables 1-2 and RULER needles
    # through lm-eval with g chosen per request, and Table 3's proof-pile grid
    e2llm-lite eval --model ./e2llm-7b --task longbench --g auto --max-length 32768 --out out/lb
    e2llm-lite eval --model ./e2llm-7b --task ruler --lengths 32768,65536 --max-length 65536 --out out/ruler
    e2llm-lite eval --model ./e2llm-7b --task proofpile --g 4,8,16 --convention all --out out/t3

``--model`` is a local folder (``save_pretrained`` output or a miniature base: ``config.json`` +
``model.safetensors``, with ``tokenizer.json`` or an HF tokenizer), a bare ``.safetensors`` state dict
of fine-tuned weights (``runs/<profile>/work/models/<run>.safetensors`` from ``e2llm-lite reproduce``;
``--base`` names the folder whose architecture and tokenizer it uses), a registered name (``smollm2-135m``,
:mod:`e2llm_lite.pretrained`), or a Hub id (online, or offline when the local Hub cache has it). ``--model``
and every other option are checked before anything is loaded; a bad one is one line.
Remote code is never trusted unless ``--trust-remote-code`` is given. Everything the run measured
goes to ``--out`` as JSON, markdown / CSV and PNG (:mod:`e2llm_lite.eval.perplexity`,
:mod:`e2llm_lite.eval.retrieval`).

``--family linear|ntk|yarn`` (every task: ppl, passkey, needle, and the benchmarks through lm-eval) picks how each length's ``g`` moves the RoPE
frequencies: every length is evaluated inside :func:`e2llm_lite.hf.rope_scale` ``(model, g,
family, base_window=L)`` with the evaluator's own ``g = 1``; ``linear`` (default, the paper) gives the
same numbers as the evaluators' ``g`` argument. The family is written into the results JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

import torch

from e2llm_lite import data as D
from e2llm_lite import hf
from e2llm_lite.eval.perplexity import CONVENTIONS, PplGrid, perplexity, resolve_g
from e2llm_lite.atomic_files import atomic_write
from e2llm_lite.eval.retrieval import STYLES, retrieval_grid, save_retrieval
from e2llm_lite.scaling import FAMILIES
from e2llm_lite import pretrained
from e2llm_lite.optional import require
from e2llm_lite.validation import (check_int, device_arg, folder_arg, int_arg, int_list_arg, local_path,
                                   out_folder_arg, path_arg, tokenizer_arg)

__all__ = ["add_arguments", "run", "load_model", "load_eval_docs", "parse_g", "family_ppl_grid",
           "family_retrieval_grid"]

TASKS = ("ppl", "passkey", "needle", "longbench", "ruler", "proofpile")
#: tasks run by the paper-benchmark modules (lm-eval for longbench / ruler: the `bench` extra)
BENCH_TASKS = ("longbench", "ruler", "proofpile")


_int_list = int_list_arg("--lengths", 2)


def _float_list(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        out = []
    if not out or not all(0.0 <= d <= 1.0 for d in out):
        raise argparse.ArgumentTypeError(f"--depths must be comma-separated numbers in [0, 1], got --depths={text!r}")
    return out


#: what ``--model`` of ``e2llm-lite eval`` accepts besides folders, registered names and Hub ids
_MODEL_FILES, _MODEL_FILES_NOTE = (".safetensors",), "a fine-tuned .safetensors file"


def check_models(spec: str, task: str = "ppl") -> list[str]:
    """``--model`` checked before any work (:func:`e2llm_lite.pretrained.check_model`, shared by every
    command); ``--task proofpile`` takes several, comma-separated. Returns the specs."""
    specs = [s for s in spec.split(",") if s] if task == "proofpile" else [spec]
    if not specs:
        raise ValueError(f"--model must name a model, got --model={spec!r}")
    for s in specs:
        pretrained.check_model(s, "--model", _MODEL_FILES, _MODEL_FILES_NOTE)
    return specs


def parse_g(text: str) -> list:
    """``"auto"``, ``"none"`` / ``"1"``, a number, or a comma-separated list of those (one row each)."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == "auto":
            out.append("auto")
        elif part in ("none", "1", "1.0"):
            out.append(None)
        else:
            try:
                g = float(part)
            except ValueError:
                raise argparse.ArgumentTypeError(f"--g takes 'auto', 'none' or numbers >= 1, got {part!r}") from None
            if not (g >= 1 and g != float("inf")):
                raise argparse.ArgumentTypeError(f"--g values must be >= 1 (and finite), got {part!r}")
            out.append(g)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help=f"local model folder, a registered name ({', '.join(sorted(pretrained.REGISTRY))}), a "
                        f"fine-tuned .safetensors file, or a Hub id (needs the network or the local Hub cache)")
    p.add_argument("--base", type=folder_arg("--base"), default=None, help="with --model FILE.safetensors: the base folder it fine-tunes (default: shipped assets)")
    p.add_argument("--tokenizer", type=tokenizer_arg("--tokenizer"), default=None, help="'bytes', 'bpe' (shipped), a tokenizer.json path; default: the model's")
    p.add_argument("--task", choices=TASKS, default="ppl", help="ppl (Table 3 / Fig. 5), passkey or needle (Fig. 6); longbench (Tables 1-2) and ruler via lm-eval; proofpile (Table 3 protocol)")
    p.add_argument("--lengths", type=_int_list, default=None, help="comma-separated evaluation lengths (ppl: windows)")
    p.add_argument("--window", type=int_arg("--window", 2), default=None, help="ppl: one window (alternative to --lengths)")
    p.add_argument("--stride", type=int_arg("--stride", 1), default=None, help="ppl: tokens between window starts (default: the window, i.e. disjoint; paper: 256)")
    p.add_argument("--convention", choices=list(CONVENTIONS), default="new", help="ppl scoring: " + "; ".join(f"{k} = {v}" for k, v in CONVENTIONS.items()))
    p.add_argument("--g", type=parse_g, default=["auto"], help="RoPE scale(s): auto (= ceil(length / L)), none, or numbers; comma-separated = one row each")
    p.add_argument("--base-window", type=int_arg("--base-window", 1), default=None, help="L for --g auto and YaRN's original window (default: the model's max_position_embeddings)")
    p.add_argument("--family", choices=list(FAMILIES), default="linear", help="RoPE scale family that applies g (every task): linear (the paper, positions m/g), ntk or yarn (need a base with rope_type='default')")
    p.add_argument("--data", type=path_arg("--data"), default="stdlib", help="'stdlib' (offline default), a text file/folder, or a datasets name")
    p.add_argument("--split", default="heldout", choices=["train", "heldout", "all"], help="corpus split for local data")
    p.add_argument("--hf-split", default=None, help="datasets split to read for a datasets name (e.g. 'test' for proof-pile)")
    p.add_argument("--text-field", default="text", help="datasets column with the text")
    p.add_argument("--exts", default=".py", help="file extensions read from a folder (comma-separated; 'any' = all)")
    p.add_argument("--n-docs", type=int_arg("--n-docs", 1), default=None, help="ppl: documents of >= --doc-tokens tokens (default 16); proofpile: default 128 as in the paper")
    p.add_argument("--doc-tokens", type=int_arg("--doc-tokens", 2), default=None, help="ppl: tokens kept per document (default: max(lengths); more = several windows per document)")
    p.add_argument("--depths", type=_float_list, default=[i / 10 for i in range(11)], help="retrieval: needle depths in [0, 1]")
    p.add_argument("--n-per-cell", type=int_arg("--n-per-cell", 1), default=10, help="retrieval: samples per (depth, length) cell (paper: 10 documents)")
    p.add_argument("--style", choices=[s for s in STYLES if s != "needle"], default="longlora", help="passkey prompt style")
    p.add_argument("--seed", type=int_arg("--seed", 0), default=0, help="seed for retrieval samples")
    p.add_argument("--batch-size", type=int_arg("--batch-size", 1), default=4, help="windows (ppl) or prompts (retrieval) per forward")
    p.add_argument("--device", type=device_arg("--device"), default="auto", help="auto, cpu, cuda, cuda:0, …")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="auto = bfloat16 on GPU, float32 on CPU")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a Hub model's own code (off by default)")
    p.add_argument("--threads", type=int_arg("--threads", 1), default=None, help="torch CPU threads (default: torch's choice; 1 is fastest on a busy CPU)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--out", type=out_folder_arg("--out"), default=None, help="folder for JSON, markdown/CSV and PNG results")
    p.add_argument("--max-length", type=int_arg("--max-length", 2), default=None, help="longbench/ruler: truncation length (default: 8 L for --g auto, g L for a fixed g)")
    p.add_argument("--truncation", choices=["middle", "left"], default="middle", help="longbench/ruler: cut over-long inputs from the middle (LongBench, the paper) or the left (lm-eval)")
    p.add_argument("--bench-tasks", default=None, help="longbench: comma-separated LongBench names (default: the 18 of Tables 1-2); ruler: lm-eval needle tasks (default niah_single_1)")
    p.add_argument("--limit", type=int_arg("--limit", 1), default=None, help="longbench/ruler: at most this many documents per task (lm-eval --limit)")


# --- loading ---------------------------------------------------------------------------------------


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def load_model(spec: str, tokenizer: str | None = None, device: str = "auto", dtype: str = "auto",
               trust_remote_code: bool = False, base: str | None = None):
    """``(model in eval mode, tokenizer)`` from a local folder, a registered name (``smollm2-135m``:
    :func:`e2llm_lite.pretrained.resolve_model`, as every command resolves ``--model``), a Hub id
    (``trust_remote_code`` off by default), or a bare ``.safetensors`` state dict (the fine-tuned weights
    ``e2llm-lite reproduce`` writes) loaded onto the architecture and tokenizer of ``base`` (default: the
    shipped miniature)."""
    import transformers

    given = spec
    # registered name -> its converted folder; a missing path or an offline Hub id: one line, before the Hub
    spec = pretrained.resolve_model(spec, "--model", files=_MODEL_FILES, files_note=_MODEL_FILES_NOTE)
    dev = _device(device)
    dt = _dtype(dtype, dev)
    path = Path(spec)
    if path.is_file() and path.suffix == ".safetensors":
        from safetensors.torch import load_file

        from e2llm_lite.models import load_base

        model, tok, _ = load_base(base)
        model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
        return model.to(device=dev, dtype=dt).eval(), (D.load_tokenizer(tokenizer) if tokenizer else tok)
    local = path.is_dir()
    kw = dict(dtype=dt, trust_remote_code=trust_remote_code)
    with pretrained.model_load_errors(given, "--model"):
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(spec, attn_implementation="sdpa", **kw)
        except (ValueError, ImportError):  # a model class without SDPA support: default attention
            model = transformers.AutoModelForCausalLM.from_pretrained(spec, **kw)
        model.to(dev).eval()
        return model, _load_tokenizer(spec, path if local else None, tokenizer, model, trust_remote_code)


def _load_tokenizer(spec, path: Path | None, name: str | None, model, trust_remote_code: bool):
    if name is not None:
        return D.load_tokenizer(name)
    if path is None or (path / "tokenizer_config.json").is_file():
        import transformers

        return transformers.AutoTokenizer.from_pretrained(spec, trust_remote_code=trust_remote_code)
    if (path / "tokenizer.json").is_file():
        return D.BPETokenizer.from_file(path / "tokenizer.json")
    if int(model.config.vocab_size) == 256:
        return D.ByteTokenizer()
    raise ValueError(f"no tokenizer in {spec} (tokenizer.json or tokenizer_config.json); pass --tokenizer bytes|bpe|PATH")


def load_texts(source: str, split: str = "heldout", hf_split: str | None = None, text_field: str = "text",
               exts: str = ".py", max_docs: int | None = None) -> list[str]:
    """Documents as strings: the offline stdlib corpus, local files, or a ``datasets`` split."""
    if hf_split is not None and source != "stdlib" and local_path("--data", source) is None:
        datasets = require("datasets", extra="train", purpose=f"reading --data {source!r} (a datasets name)")

        ds = datasets.load_dataset(source, split=hf_split, streaming=True)
        out = []
        for row in ds:
            out.append(row[text_field])
            if max_docs is not None and len(out) >= max_docs:
                break
        return out
    ext_list = None if exts == "any" else tuple(e if e.startswith(".") else f".{e}" for e in exts.split(","))
    return D.load_corpus(source, split=split, exts=ext_list, text_field=text_field).docs


def load_eval_docs(tokenizer, texts: list[str], length: int, n_docs: int) -> list[torch.Tensor]:
    """The first ``length`` tokens of up to ``n_docs`` documents that have that many (same tokens for every column)."""
    return D.long_segments(D.encode_docs(tokenizer, texts, min_len=length), length, max_docs=n_docs)


# --- tasks ---------------------------------------------------------------------------------------


def _g_name(g) -> str:
    return "g=auto" if g == "auto" else "g=1" if g is None else f"g={g:g}"


def _scaled(model, g: float, family: str, base_window: int):
    """``hf.rope_scale(model, g, family, base_window)``; nothing at ``g = 1`` (the identity in every family)."""
    return hf.rope_scale(model, g, family=family, base_window=base_window) if g != 1.0 else contextlib.nullcontext()


def family_ppl_grid(model, name: str, g_rules: list, docs: list[torch.Tensor], lengths: list[int], stride: int | None,
                    family: str = "linear", base_window: int | None = None, convention: str = "new",
                    batch_size: int = 1, progress: bool = False, meta: dict | None = None) -> PplGrid:
    """:func:`ppl_grid` for one model, one row per rule in ``g_rules``, with each cell's g applied by ``family``.

    Each length's g (:func:`resolve_g`) is installed with :func:`hf.rope_scale` around :func:`perplexity`,
    whose own g is 1; ``family="linear"`` equals ``ppl_grid`` with the same rules.
    """
    if stride is not None:  # as ppl_grid: one stride for every column
        stride = check_int("stride", stride, 1, min(lengths), note="at most min(lengths)")
    L = int(base_window) if base_window is not None else hf.base_window_of(model)
    suffix = "" if family == "linear" else f", {family}"
    rows, ppl, gs, ns = [], [], [], []
    for rule in g_rules:
        row_p, row_g, row_n = [], [], []
        for n in lengths:
            g = resolve_g(model, rule, n, L)
            with _scaled(model, g, family, L):
                r = perplexity(model, docs, n, stride, g=None, convention=convention, batch_size=batch_size,
                               progress=progress)
            row_p.append(r.ppl), row_g.append(g), row_n.append(r.n_tokens)
        rows.append(f"{name} ({_g_name(rule)}{suffix})"), ppl.append(row_p), gs.append(row_g), ns.append(row_n)
    return PplGrid(rows, list(lengths), ppl, gs, ns, stride, convention,
                   {**(meta or {}), "family": family, "base_window": L})


def family_retrieval_grid(model, tokenizer, filler, lengths: list[int], depths: list[float], n_per_cell: int,
                          seed: int, g_rule, style: str, family: str = "linear", base_window: int | None = None,
                          batch_size: int = 8, progress: bool = False) -> dict:
    """:func:`retrieval_grid` with each length's g applied by ``family`` (one length at a time, evaluator g = 1).

    Samples depend only on (seed, length, depth), so the grid equals ``retrieval_grid`` for ``family="linear"``.
    """
    L = int(base_window) if base_window is not None else hf.base_window_of(model)
    cols, gs = [], []
    for n in lengths:
        gs.append(resolve_g(model, g_rule, n, L))
        with _scaled(model, gs[-1], family, L):
            cols.append(retrieval_grid(model, tokenizer, filler, [n], depths, n_per_cell, seed, g=None, style=style,
                                       base_window=L, batch_size=batch_size, progress=progress))
    grid = dict(cols[0])
    acc = [[c["accuracy"][di][0] for c in cols] for di in range(len(depths))]  # [depth][length]
    grid.update(lengths=[int(n) for n in lengths], accuracy=acc, g=gs, family=family, base_window=L)
    return grid


def run(args) -> int:
    specs = check_models(args.model, args.task)  # before anything else: the same check as train, plan, reproduce
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.threads:
        torch.set_num_threads(args.threads)
    family = getattr(args, "family", "linear")
    if args.task in BENCH_TASKS:  # imported here: lm-eval (the `bench` extra) is needed only for these
        if args.task == "proofpile":
            require("datasets", extra="train", purpose="--task proofpile (proof-pile is read with datasets)", load=False)
        else:
            require("lm_eval", extra="bench", purpose=f"--task {args.task}", load=False)
        # the benchmark runners read --model as a folder, a .safetensors file or a Hub id: registered names
        # become their converted folders here (the folder's name is the registered name)
        args.model = ",".join(pretrained.resolve_model(s, "--model", files=_MODEL_FILES, files_note=_MODEL_FILES_NOTE)
                              for s in specs)
        if args.task == "proofpile":
            from e2llm_lite.eval.proof_pile import run_cli
        else:
            from e2llm_lite.eval.longbench import run_cli
        return run_cli(args, load_model)
    lengths = args.lengths or ([args.window] if args.window else None)
    if not lengths:
        raise ValueError("give --lengths (comma-separated, e.g. 256,512) or --window for one ppl window")
    model, tok = load_model(args.model, args.tokenizer, args.device, args.dtype, args.trust_remote_code, args.base)
    name = Path(args.model).stem if Path(args.model).is_file() else (Path(args.model).name or args.model)
    progress = not args.no_progress
    out = Path(args.out) if args.out else None
    meta = dict(model=name, task=args.task, data=args.data, split=args.hf_split or args.split)

    if args.task == "ppl":
        texts = load_texts(args.data, args.split, args.hf_split, args.text_field, args.exts,
                           max_docs=None if args.hf_split is None else 8 * (args.n_docs or 16))
        doc_tokens = args.doc_tokens or max(lengths)
        if doc_tokens < max(lengths):
            raise ValueError(f"--doc-tokens must be >= max(lengths) = {max(lengths)}, got {doc_tokens}")
        docs = load_eval_docs(tok, texts, doc_tokens, args.n_docs or 16)
        meta.update(n_docs=len(docs), doc_tokens=doc_tokens)
        grid = family_ppl_grid(model, name, args.g, docs, lengths, args.stride, family, args.base_window,
                               args.convention, args.batch_size, progress, meta)
        if out is not None:
            grid.save(out, "ppl")
        print(grid.to_markdown())
    else:
        style = "needle" if args.task == "needle" else args.style
        texts = load_texts(args.data, args.split, args.hf_split, args.text_field, args.exts, max_docs=10 * args.n_per_cell)
        filler = texts[: max(10, args.n_per_cell)] if style == "needle" else D.filler_text(D.Corpus(texts, [], args.data, args.split))
        for g in args.g:
            stem = args.task if len(args.g) == 1 else f"{args.task}_{_g_name(g).replace('=', '')}"
            grid = family_retrieval_grid(model, tok, filler, lengths, args.depths, args.n_per_cell, args.seed, g, style,
                                         family, args.base_window, args.batch_size, progress)
            if out is not None:
                save_retrieval(grid, out, stem)
            suffix = "" if family == "linear" else f", {family}"
            print(_retrieval_markdown(grid, f"{name} ({_g_name(g)}{suffix})"))
    if out is not None:
        atomic_write(out / "eval_args.json", json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")}, indent=2) + "\n")
        print(f"results in {out}")
    return 0


def _retrieval_markdown(grid: dict, title: str) -> str:
    lines = [f"{grid['style']} retrieval, exact match, {title}", "",
             "| depth | " + " | ".join(str(n) for n in grid["lengths"]) + " |",
             "|---|" + "---|" * len(grid["lengths"])]
    for d, row in zip(grid["depths"], grid["accuracy"]):
        lines.append(f"| {round(100 * d)}% | " + " | ".join(f"{100 * a:.0f}%" for a in row) + " |")
    return "\n".join(lines)
