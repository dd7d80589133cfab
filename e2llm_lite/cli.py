"""``e2llm-lite`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported lazily so ``e2llm-lite --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
COMMANDS = {
    "demo": ("e2llm_lite.demo", "a 20-second tour: sample E² draws and check the hook on a tiny Llama"),
    "reproduce": ("e2llm_lite.miniature.reproduce", "the paper's experiments in miniature on a CPU (Table 3-5, Figs. 4-6)"),
    "pretrain": ("e2llm_lite.miniature.pretrain", "pre-train the miniature's base model from scratch"),
    "train": ("e2llm_lite.train.finetune", "E² fine-tuning of a Hub model or local checkpoint (full, LoRA, QLoRA)"),
    "plan": ("e2llm_lite.train.planner", "memory and time estimate for a model, mode and training length"),
    "eval": ("e2llm_lite.eval.cli", "sliding-window perplexity, passkey and needle-in-a-haystack"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2llm-lite", description="E²-LLM in miniature: train, evaluate and reproduce on a CPU or one GPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = argv[0] if argv and not argv[0].startswith("-") else None
    for name, (mod_name, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:  # import only the module that will run
            try:
                mod = importlib.import_module(mod_name)
            except ModuleNotFoundError as e:
                if e.name != mod_name:
                    raise
                parser.error(f"subcommand {name!r} is not available in this version")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
