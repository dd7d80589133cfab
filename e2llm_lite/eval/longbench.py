r"""LongBench as the paper ran it (arXiv 2401.06951, §5.2, Tables 1–2), on lm-evaluation-harness's tasks.

* **Tasks.** The 18 LongBench datasets of Tables 1–2 (:data:`PAPER_TASKS`), run as lm-eval's
  ``longbench_<name>`` tasks — LongBench's official prompts, generation lengths and metric functions
  (lm-eval's ``tasks/longbench/metrics.py``, taken from THUDM/LongBench). The paper leaves out the
  three synthetic tasks (passage count / retrieval), although Table 2's caption names them.
* **Truncation.** Inputs longer than the model's window are cut from the middle (§5.2), done by
  :class:`e2llm_lite.eval.harness.E2LLM` (``truncation=middle``).
* **Averages.** Table 2's "Overall" columns. Its caption says "macro-average over major task
  categories … code tasks are included in both languages", but the printed numbers are reproduced by
  plain means over *tasks* (e.g. GPT-3.5-Turbo-16K: EN 44.60 = mean of its 14 English-and-code task
  scores, ZH 33.78 = mean of its 4 Chinese scores *without* code, All 42.19 = mean of all 18):
  :func:`overall` computes exactly that, and ``tests/eval/test_harness.py`` checks it against the
  paper's own rows. Scores are lm-eval's ``score`` metric (0–1) × 100.

:func:`run_longbench` evaluates, then writes ``longbench.json`` (scores, averages, applied g per
request, lm-eval's config), ``longbench.md`` (Table 1 and Table 2 layouts, the paper's rows beside
ours) and ``longbench.png`` (a bar per task).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from e2llm_lite.atomic_files import atomic_write, save_json
from e2llm_lite.figure_files import save_figure

__all__ = [
    "PAPER_TASKS", "TABLE1", "TABLE2", "PAPER_SCORES", "PAPER_OVERALL", "lm_eval_task", "overall", "scores_from_results",
    "to_markdown", "plot", "local_task", "official_fields_to_lm_eval", "run_longbench", "RULER_NIAH_TASKS", "run_ruler",
    "model_for_cli", "run_cli",
]

#: (LongBench dataset name, column header, language) in the order of Tables 1–2; "code" counts in EN and All.
PAPER_TASKS: tuple[tuple[str, str, str], ...] = (
    ("narrativeqa", "NarrativeQA", "en"),
    ("qasper", "Qasper", "en"),
    ("multifieldqa_en", "MultiFieldQA-en", "en"),
    ("multifieldqa_zh", "MultiFieldQA-zh", "zh"),
    ("hotpotqa", "HotpotQA", "en"),
    ("2wikimqa", "2WikiMQA", "en"),
    ("musique", "MuSiQue", "en"),
    ("dureader", "DuReader", "zh"),
    ("gov_report", "GovReport", "en"),
    ("qmsum", "QMSum", "en"),
    ("multi_news", "MultiNews", "en"),
    ("vcsum", "VCSUM", "zh"),
    ("trec", "TREC", "en"),
    ("triviaqa", "TriviaQA", "en"),
    ("samsum", "SAMSum", "en"),
    ("lsht", "LSHT", "zh"),
    ("lcc", "LCC", "code"),
    ("repobench-p", "RepoBench-P", "code"),
)
_NAMES = [t[0] for t in PAPER_TASKS]
_HEADER = {t[0]: t[1] for t in PAPER_TASKS}
_LANG = {t[0]: t[2] for t in PAPER_TASKS}
#: Table 1's columns (single-doc QA, multi-doc QA, summarization) and Table 2's (the rest + Overall)
TABLE1 = tuple(_NAMES[:10])
TABLE2 = tuple(_NAMES[10:])

#: the paper's per-task scores (%), Tables 1–2, in PAPER_TASKS order
PAPER_SCORES: dict[str, tuple[float, ...]] = {
    "GPT-3.5-Turbo-16K": (23.6, 43.3, 52.3, 61.2, 51.6, 37.7, 26.9, 28.7, 29.5, 23.4, 26.7, 16.0, 68.0, 91.4, 41.7, 29.2, 54.7, 53.6),
    "Llama2-7B-chat-4K": (18.7, 19.2, 36.8, 11.9, 25.4, 32.8, 9.4, 5.2, 27.3, 20.8, 25.8, 0.2, 61.5, 77.8, 40.7, 19.8, 52.4, 43.8),
    "LongChat-v1.5-7B-32K": (16.9, 27.7, 41.4, 29.1, 31.5, 20.6, 9.7, 19.5, 30.8, 22.7, 26.4, 9.9, 63.5, 82.3, 34.2, 23.2, 53.0, 55.3),
    "Vicuna-v1.5-7B-16K": (19.4, 26.1, 38.5, 43.0, 25.3, 20.8, 9.8, 19.3, 27.9, 22.8, 27.2, 15.1, 74.0, 86.2, 40.8, 28.8, 51.0, 43.5),
    "LongLora-7B-16K": (19.8, 29.1, 37.2, 8.5, 37.0, 30.3, 17.1, 15.3, 31.5, 24.1, 27.7, 0.5, 63.5, 85.7, 41.9, 26.0, 57.6, 54.5),
    "E2-LLM-Llama2-7B-16K": (16.4, 34.7, 39.1, 43.6, 37.1, 34.4, 17.9, 18.6, 29.4, 23.0, 25.9, 9.6, 68.5, 89.2, 38.2, 35.0, 65.8, 58.1),
    "E2-LLM-Llama2-7B-32K": (12.3, 35.6, 40.4, 46.6, 43.7, 34.8, 22.0, 22.6, 29.7, 23.8, 25.4, 11.7, 70.5, 88.4, 32.5, 40.0, 64.5, 60.9),
    "Llama2-13B-chat-4K": (19.2, 25.8, 36.9, 33.3, 36.1, 32.4, 14.5, 26.8, 26.6, 20.2, 26.1, 17.2, 66.0, 85.2, 36.5, 20.3, 51.9, 52.8),
    "Vicuna-v1.5-13B-16K": (18.9, 29.9, 46.2, 28.4, 38.1, 36.0, 10.7, 20.9, 27.9, 22.1, 27.1, 16.4, 74.0, 84.9, 27.8, 29.8, 44.1, 45.6),
    "PI-Llama2-13B-16K": (19.2, 33.3, 42.7, 47.9, 44.9, 34.8, 19.5, 17.4, 27.9, 23.7, 25.9, 9.1, 72.5, 86.5, 27.9, 31.0, 62.5, 51.1),
    "E2-LLM-Llama2-13B-16K": (25.4, 35.3, 46.5, 49.1, 46.4, 38.3, 25.2, 19.3, 29.9, 22.7, 27.0, 9.8, 73.5, 87.9, 40.6, 36.0, 65.4, 59.1),
    "E2-LLM-Llama2-13B-32K": (24.1, 36.2, 49.0, 52.5, 49.2, 37.6, 23.1, 20.4, 29.9, 23.1, 26.8, 10.2, 75.0, 87.8, 40.9, 44.5, 63.8, 57.5),
}
#: the paper's printed Overall columns (EN, ZH, All), Table 2
PAPER_OVERALL: dict[str, tuple[float, float, float]] = {
    "GPT-3.5-Turbo-16K": (44.60, 33.78, 42.19),
    "Llama2-7B-chat-4K": (35.17, 15.45, 20.79),
    "LongChat-v1.5-7B-32K": (36.86, 20.43, 33.21),
    "Vicuna-v1.5-7B-16K": (36.49, 26.55, 34.28),
    "LongLora-7B-16K": (39.79, 14.55, 34.18),
    "E2-LLM-Llama2-7B-16K": (41.26, 26.70, 38.03),
    "E2-LLM-Llama2-7B-32K": (41.74, 30.23, 39.18),
    "Llama2-13B-chat-4K": (37.87, 24.38, 34.87),
    "Vicuna-v1.5-13B-16K": (38.08, 23.86, 34.92),
    "PI-Llama2-13B-16K": (40.88, 26.35, 37.65),
    "E2-LLM-Llama2-13B-16K": (44.73, 28.56, 41.13),
    "E2-LLM-Llama2-13B-32K": (44.55, 31.93, 41.74),
}
#: rows shown beside ours by default: the paper's E² models and its strongest baseline
DEFAULT_PAPER_ROWS = ("GPT-3.5-Turbo-16K", "E2-LLM-Llama2-7B-32K", "E2-LLM-Llama2-13B-32K")

#: lm-eval's RULER needle tasks (Fig. 6 is a needle-in-a-haystack test); the ones marked need no download
RULER_NIAH_TASKS = ("niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
                    "niah_multikey_3", "niah_multiquery", "niah_multivalue")
#: lengths lm-eval's RULER tasks report (their metric_list); other lengths are not aggregated
RULER_LENGTHS = (4096, 8192, 16384, 32768, 65536, 131072)


def lm_eval_task(name: str) -> str:
    """lm-eval's task name for a LongBench dataset (``"2wikimqa"`` -> ``"longbench_2wikimqa"``)."""
    if name not in _LANG:
        raise ValueError(f"unknown LongBench task {name!r}; valid: {', '.join(_NAMES)}")
    return f"longbench_{name}"


def overall(scores: Mapping[str, float]) -> dict[str, float | None]:
    """Table 2's EN / ZH / All: means over the tasks present (EN = English + code, ZH = Chinese, All = all).

    ``scores`` maps LongBench names to percentages; a group with no task present is ``None``.
    """
    unknown = [k for k in scores if k not in _LANG]
    if unknown:
        raise ValueError(f"unknown LongBench task(s) {unknown}; valid: {', '.join(_NAMES)}")
    groups = {"EN": ("en", "code"), "ZH": ("zh",), "All": ("en", "zh", "code")}
    out: dict[str, float | None] = {}
    for key, langs in groups.items():
        vals = [float(v) for k, v in scores.items() if _LANG[k] in langs]
        out[key] = sum(vals) / len(vals) if vals else None
    return out


def scores_from_results(results: Mapping, metric: str = "score,none") -> dict[str, float]:
    """Per-task percentages from ``lm_eval.simple_evaluate``'s output (LongBench ``score`` × 100)."""
    res = results["results"]
    out = {}
    for name in _NAMES:
        key = lm_eval_task(name)
        if key in res and metric in res[key]:
            out[name] = 100.0 * float(res[key][metric])
    return out


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def to_markdown(ours: Mapping[str, float], label: str = "ours", paper_rows: Sequence[str] = DEFAULT_PAPER_ROWS) -> str:
    """Tables 1 and 2 laid out as in the paper: the paper's rows, then ours ("–" = not run)."""
    rows = [(name, dict(zip(_NAMES, PAPER_SCORES[name])), PAPER_OVERALL[name]) for name in paper_rows]
    ov = overall(ours)
    rows.append((f"**{label}**", dict(ours), (ov["EN"], ov["ZH"], ov["All"])))
    lines = ["Table 1 layout (single-doc QA, multi-doc QA, summarization), scores in %", "",
             "| model | " + " | ".join(_HEADER[n] for n in TABLE1) + " |", "|---|" + "---|" * len(TABLE1)]
    lines += [f"| {name} | " + " | ".join(_fmt(s.get(n)) for n in TABLE1) + " |" for name, s, _ in rows]
    lines += ["", "Table 2 layout (summarization, few-shot, code, Overall), scores in %", "",
              "| model | " + " | ".join(_HEADER[n] for n in TABLE2) + " | EN | ZH | All |",
              "|---|" + "---|" * (len(TABLE2) + 3)]
    for name, s, o in rows:
        cells = [_fmt(s.get(n)) for n in TABLE2] + ["–" if v is None else f"{v:.2f}" for v in o]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Paper rows: arXiv 2401.06951 Tables 1–2 (their printed Overall). Ours: lm-eval `score` × 100; "
              "EN = mean of English and code tasks, ZH = mean of Chinese tasks, All = mean of all tasks run."]
    return "\n".join(lines)


def plot(ours: Mapping[str, float], label: str = "ours", paper_row: str | None = "E2-LLM-Llama2-7B-32K",
         path: str | os.PathLike | None = None):
    """Bars per LongBench task: ours beside one paper row; returns ``(fig, ax)``."""
    import matplotlib.pyplot as plt

    names = [n for n in _NAMES if n in ours] or list(_NAMES)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.4 if paper_row else 0.8
    xs = range(len(names))
    ax.bar([x - (width / 2 if paper_row else 0) for x in xs], [ours.get(n, 0.0) for n in names], width, label=label)
    if paper_row:
        paper = dict(zip(_NAMES, PAPER_SCORES[paper_row]))
        ax.bar([x + width / 2 for x in xs], [paper[n] for n in names], width, label=f"{paper_row} (paper)")
    ax.set_xticks(list(xs), [_HEADER[n] for n in names], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("score (%)")
    ax.set_title("LongBench (Tables 1–2 tasks)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig, ax


def official_fields_to_lm_eval(dataset):
    """THUDM/LongBench rows name the question ``input``; lm-eval's copy (``Xnhyacinth/LongBench``) and its
    prompts call it ``question``. Rename so that a file in the official format fits lm-eval's templates."""
    if "question" in dataset.column_names or "input" not in dataset.column_names:
        return dataset
    return dataset.rename_column("input", "question")


def local_task(name: str, data_files: str | os.PathLike, task_name: str | None = None) -> dict:
    """lm-eval's official config for LongBench ``name`` (prompt, generation settings, metric), reading
    a local JSON-lines file in LongBench's format (``input``, ``context``, ``answers``, ``all_classes``, …;
    ``input`` is renamed to lm-eval's ``question`` by :func:`official_fields_to_lm_eval`).

    For offline runs and for a copy of LongBench downloaded elsewhere; pass the dict in ``tasks=`` of
    ``lm_eval.simple_evaluate``.
    """
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    lm_eval_task(name)
    path = Path(data_files)
    if not path.is_file():
        raise FileNotFoundError(f"LongBench data file {path} does not exist")
    yaml_path = Path(lm_eval.__file__).parent / "tasks" / "longbench" / f"{name}.yaml"
    cfg = load_yaml(yaml_path)
    cfg.pop("tag", None)
    cfg.update(task=task_name or f"{cfg['task']}_local", dataset_path="json", dataset_name=None,
               dataset_kwargs={"data_files": {"test": str(path)}}, test_split="test",
               process_docs=official_fields_to_lm_eval)
    return cfg


def run_longbench(lm, out_dir: str | os.PathLike | None = None, tasks: Iterable[str] | None = None,
                  limit: int | float | None = None, label: str = "ours", task_configs: Sequence[dict] | None = None,
                  gen_kwargs: dict | None = None, task_manager=None, **evaluate_kw) -> dict:
    """Run LongBench through ``lm_eval.simple_evaluate`` and write JSON / markdown / PNG to ``out_dir``.

    ``lm``: an lm-eval model (e.g. :class:`e2llm_lite.eval.harness.E2LLM`). ``tasks``: LongBench names
    (default: all 18 of Tables 1–2); ``task_configs``: ready configs instead (see :func:`local_task`),
    whose ``task`` names must be ``longbench_<name>`` or ``longbench_<name>_local``. Returns
    ``{"scores", "overall", "applied", "results", "samples", …}``.
    """
    import lm_eval

    if task_configs is None:
        names = list(tasks) if tasks is not None else list(_NAMES)
        task_list = [lm_eval_task(n) for n in names]
    else:
        task_list = list(task_configs)
    results = lm_eval.simple_evaluate(model=lm, tasks=task_list, limit=limit, gen_kwargs=gen_kwargs,
                                      task_manager=task_manager, **evaluate_kw)
    res = {k.removesuffix("_local"): v for k, v in results["results"].items()}
    scores = scores_from_results({"results": res})
    summary = {"label": label, "scores": scores, "overall": overall(scores),
               "applied": list(getattr(lm, "applied", [])), "family": getattr(lm, "family", "linear"), "limit": limit,
               "paper": {"tasks": _NAMES, "scores": PAPER_SCORES, "overall": PAPER_OVERALL},
               "lm_eval_version": lm_eval.__version__, "results": res}
    if out_dir is not None:
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_json(summary, out / "longbench.json")
        atomic_write(out / "longbench.md", to_markdown(scores, label) + "\n")
        fig, _ = plot(scores, label, path=out / "longbench.png")
        plt.close(fig)
    summary["samples"] = results.get("samples")  # per-document logs (log_samples=True); not written to JSON
    return summary


def run_ruler(lm, tokenizer: str, lengths: Sequence[int] = (4096,), tasks: Sequence[str] = ("niah_single_1",),
              limit: int | float | None = None, out_dir: str | os.PathLike | None = None, **evaluate_kw) -> dict:
    """lm-eval's RULER needle tasks at ``lengths`` (Fig. 6's pressure test, on RULER's generator).

    ``tokenizer``: a name or folder lm-eval's RULER code loads to size its haystacks. Lengths must be
    among :data:`RULER_LENGTHS` (the lengths lm-eval's RULER configs aggregate).
    """
    import lm_eval

    bad = [n for n in lengths if int(n) not in RULER_LENGTHS]
    if bad:
        raise ValueError(f"RULER lengths {bad} are not reported by lm-eval's RULER tasks; valid: {RULER_LENGTHS}")
    unknown = [t for t in tasks if t not in RULER_NIAH_TASKS]
    if unknown:
        raise ValueError(f"unknown RULER needle task(s) {unknown}; valid: {', '.join(RULER_NIAH_TASKS)}")
    results = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), limit=limit,
                                      metadata={"tokenizer": str(tokenizer), "max_seq_lengths": [int(n) for n in lengths]},
                                      **evaluate_kw)
    table = {t: {str(n): results["results"][t].get(f"{n},none") for n in lengths} for t in tasks}
    summary = {"accuracy": table, "applied": list(getattr(lm, "applied", [])), "family": getattr(lm, "family", "linear"),
               "lm_eval_version": lm_eval.__version__,
               "results": results["results"]}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_json(summary, out / "ruler.json")
        head = "| task | " + " | ".join(str(n) for n in lengths) + " |"
        lines = [head, "|---|" + "---|" * len(lengths)]
        lines += [f"| {t} | " + " | ".join("–" if v is None or v < 0 else f"{100 * v:.1f}" for v in row.values()) + " |"
                  for t, row in table.items()]
        atomic_write(out / "ruler.md", "\n".join(lines) + "\n")
    return summary


# --- e2llm-lite eval --task longbench | ruler -----------------------------------------------------


def _g_arg(gs) -> int | str:
    """The CLI's ``--g`` (a list from ``e2llm_lite.eval.cli.parse_g``) as E2LLM's ``g``: one rule only."""
    if len(gs) != 1:
        raise ValueError(f"--task longbench/ruler take one --g rule ('auto' or an integer), got {gs}")
    g = gs[0]
    if g == "auto":
        return "auto"
    if g is None:
        return 1
    if float(g) != int(g):
        raise ValueError(f"--g must be an integer for lm-eval runs (positions / g), got {g}")
    return int(g)


def model_for_cli(args, load_model):
    """``(E2LLM, tokenizer source)`` for ``e2llm-lite eval --model …`` (a folder, a Hub id or fine-tuned
    ``.safetensors`` on ``--base``), loaded with the CLI's own ``load_model`` so every ``--model`` form works.
    ``--family`` picks the scale family that applies each request's g (:class:`E2LLM`'s ``family``)."""
    from e2llm_lite.eval.harness import E2LLM, hf_tokenizer
    from e2llm_lite.models import BASE_ASSETS

    model, _ = load_model(args.model, None, args.device, args.dtype, args.trust_remote_code, args.base)
    path = Path(args.model)
    folder = path if path.is_dir() else (Path(args.base) if args.base else BASE_ASSETS) if path.suffix == ".safetensors" else None
    if args.tokenizer is not None and Path(args.tokenizer).is_dir():
        folder = Path(args.tokenizer)
    if folder is not None:
        tok, tok_source = hf_tokenizer(folder), str(folder)
    else:  # a Hub id
        import transformers

        tok = transformers.AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
        tok_source = args.model
    lm = E2LLM(pretrained=model, tokenizer=tok, base_window=args.base_window, g=_g_arg(args.g),
               family=getattr(args, "family", "linear"), max_length=args.max_length, truncation=args.truncation,
               batch_size=args.batch_size)
    return lm, tok_source


def run_cli(args, load_model) -> int:
    """``e2llm-lite eval --task longbench`` (Tables 1–2) or ``--task ruler`` (RULER needles)."""
    lm, tok_source = model_for_cli(args, load_model)
    out = Path(args.out) if args.out else None
    label = Path(args.model).stem if Path(args.model).is_file() else (Path(args.model).name or args.model)
    if args.task == "longbench":
        names = args.bench_tasks.split(",") if args.bench_tasks else list(_NAMES)
        configs = manager = None
        if args.data != "stdlib":  # a folder of LongBench files in the official format: <name>.jsonl
            from lm_eval.tasks import TaskManager

            folder = Path(args.data)
            if not folder.is_dir():
                raise FileNotFoundError(f"--data {args.data}: not a folder of LongBench <name>.jsonl files")
            configs = [local_task(n, folder / f"{n}.jsonl") for n in names]
            manager = TaskManager(include_defaults=False)  # full configs: no need to index lm-eval's task folders
        summary = run_longbench(lm, out, tasks=names, limit=args.limit, label=label, task_configs=configs,
                                task_manager=manager, log_samples=False)
        print(to_markdown(summary["scores"], label))
    else:
        tasks = args.bench_tasks.split(",") if args.bench_tasks else ("niah_single_1",)
        summary = run_ruler(lm, tok_source, args.lengths or (4096,), tasks, limit=args.limit, out_dir=out, log_samples=False)
        print(json.dumps(summary["accuracy"], indent=2))
    if out is not None:
        lm.save_applied(out / f"{args.task}_applied_g.json")
        print(f"results in {out}")
    return 0
