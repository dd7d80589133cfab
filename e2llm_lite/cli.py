"""``e2llm-lite`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported lazily so ``e2llm-lite --help`` stays fast.

**User errors are one line.** A subcommand reports a bad value by raising ``ValueError`` (or
``FileNotFoundError`` for a path that does not exist); :func:`main` turns it into
one line ``e2llm-lite <command>: error: <message>`` on stderr and exit code 2, as argparse does for a bad
option. A missing optional package becomes one line naming the extra that installs it
(:mod:`e2llm_lite.optional`). Anything else is a bug and keeps its traceback; ``E2LLM_LITE_TRACEBACK=1``
shows the traceback of user errors too.

**Options are checked while parsing.** Each subcommand's ``add_arguments`` gives every number, choice and
path a ``type=`` validator (:mod:`e2llm_lite.validation`: ``int_arg``, ``out_folder_arg``, …) whose
message starts with the flag; that message is printed as it is, ``e2llm-lite <command>: error: <message>``,
before a model is loaded or a folder written. ``--model`` is checked first thing in ``run`` by
:func:`e2llm_lite.pretrained.check_model`, the resolution every command shares.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import sys

from e2llm_lite.optional import DIST as _DIST  # import name -> distribution name, where they differ
from e2llm_lite.optional import MissingPackage, missing_message

__all__ = ["COMMANDS", "USER_ERRORS", "main", "extra_for"]

#: subcommand -> (module, one-line help)
COMMANDS = {
    "demo": ("e2llm_lite.tour", "a 20-second tour: sample E² draws and check the hook on a tiny Llama"),
    "reproduce": ("e2llm_lite.studies.reproduce", "the paper's experiments in miniature on a CPU (Table 3-5, Figs. 4-6)"),
    "pretrain": ("e2llm_lite.studies.miniature.pretrain", "pre-train the miniature's base model from scratch"),
    "train": ("e2llm_lite.train.finetune", "E² fine-tuning of a Hub model or local checkpoint (full, LoRA, QLoRA)"),
    "plan": ("e2llm_lite.train.planner", "memory and time estimate for a model, mode and training length"),
    "eval": ("e2llm_lite.eval.cli", "sliding-window perplexity, passkey and needle-in-a-haystack"),
    "check-export": ("e2llm_lite.engines", "what transformers, vLLM and llama.cpp compute from an export's RoPE config"),
}


#: exceptions that mean "the user asked for something invalid" (see the module docstring)
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def extra_for(module: str | None) -> str | None:
    """The extra of ``e2llm-lite`` (from its installed metadata) that installs ``module``, or None.

    ``""`` when the package is a core dependency (a broken install); the ``test`` extra is named only
    when no other extra lists the package."""
    if not module:
        return None
    top = module.split(".")[0]
    dist = _DIST.get(top, top).lower().replace("_", "-")
    try:
        reqs = importlib.metadata.requires("e2llm-lite") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    extras = []
    for r in reqs:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r)
        if not m or m[1].lower().replace("_", "-") != dist:
            continue
        e = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", r)
        if e is None:
            return ""
        extras.append(e[1])
    return next((e for e in extras if e != "test"), extras[0] if extras else None)


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (``prog: error: message``) instead of usage + message."""

    def error(self, message: str):
        m = re.fullmatch(r"argument ([^:]+): (.*)", message, re.S)
        if m and m[2].startswith(tuple(f"{flag} " for flag in m[1].split("/"))):
            # a validator's own message (validation.*_arg): it names the flag, the value and what is valid
            self.exit(2, f"{self.prog}: error: {' '.join(m[2].split())}\n")
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(command: str, message: str, code: int = 2) -> int:
    one_line = " ".join(str(message).split()) or "invalid input"
    print(f"e2llm-lite {command}: error: {one_line}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="e2llm-lite", description="E²-LLM in miniature: train, evaluate and reproduce on a CPU or one GPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = argv[0] if argv and not argv[0].startswith("-") else None
    for name, (mod_name, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:  # import only the module that will run
            try:
                mod = importlib.import_module(mod_name)
            except ModuleNotFoundError as e:
                if isinstance(e, MissingPackage):
                    return _fail(name, str(e))
                if e.name == mod_name:
                    parser.error(f"subcommand {name!r} is not available in this version")
                extra = extra_for(e.name)
                if extra is None:
                    raise
                return _fail(name, missing_message(e.name, extra))
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    debug = os.environ.get("E2LLM_LITE_TRACEBACK", "") not in ("", "0")
    try:
        return int(args._run(args) or 0)
    except ModuleNotFoundError as e:  # an optional package imported lazily by this command
        if isinstance(e, MissingPackage) and not debug:  # already one line with the install command
            return _fail(args.command, str(e))
        extra = extra_for(e.name)
        if extra is None or debug:
            raise
        return _fail(args.command, missing_message(e.name, extra))
    except USER_ERRORS as e:
        if debug:
            raise
        return _fail(args.command, str(e) if not isinstance(e, OSError) or not e.filename else
                     f"{e.strerror or 'no such file or folder'}: {e.filename}")
    except KeyboardInterrupt:
        return _fail(args.command, "interrupted (a re-run of the same command resumes where it stopped)", 130)


if __name__ == "__main__":
    raise SystemExit(main())
