"""The real model's shipped adapters and results — what notebooks and users call, after a plain pip install.

* :data:`SHIPPED_ADAPTERS` — the E² and E²-YaRN LoRA adapters of SmolLM2-135M-Instruct shipped in ``assets/``,
  each with the scale family that applies ``g`` at inference;
* :func:`load_shipped` — the base model with those adapters, by name (needs the ``real`` extra);
* :func:`live_demo` — base vs the shipped adapters, live: perplexity at each ``g`` and passkey exact match;
* :func:`shipped_results` — the study's results as shipped (``assets/real_profile.json``), no training needed.

:func:`ship_results` and :func:`ship_adapter` write those files (``e2llm-lite reproduce --profile real
--ship-adapter``, :mod:`e2llm_lite.studies.real_model.run`).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

from e2llm_lite.atomic_files import atomic_write, save_json
from e2llm_lite.eval import perplexity as P
from e2llm_lite.studies.real_model.measure import eval_docs, greedy, passkey_samples, scaled
from e2llm_lite.train import loading
from e2llm_lite.validation import check_int

__all__ = ["ADAPTER_DIR", "SHIPPED_RESULTS", "SHIPPED_ADAPTERS", "shipped_results", "ship_results", "ship_adapter",
           "load_shipped", "live_demo"]

#: the trained E² LoRA adapter shipped with the package (``load_shipped``)
ADAPTER_DIR = Path(__file__).resolve().parent / "assets" / "smollm2_e2_lora"
#: the real profile's results as shipped (``shipped_results``; written with ``--ship-adapter``)
SHIPPED_RESULTS = ADAPTER_DIR.parent / "real_profile.json"
#: the shipped adapters by run name: (folder, scale family that applies g at inference)
SHIPPED_ADAPTERS = {"e2": (ADAPTER_DIR, "linear"),
                    "e2-yarn": (Path(__file__).resolve().parent / "assets" / "smollm2_e2_yarn_lora", "yarn")}


def shipped_results() -> dict:
    """The real profile's results as shipped inside the package (the JSON of ``results/real/``, minus loss curves)."""
    return json.loads(SHIPPED_RESULTS.read_text(encoding="utf-8"))


def ship_results(res: dict, path: str | os.PathLike = SHIPPED_RESULTS) -> Path:
    """Write ``res`` without the per-step loss curves as package data (notebooks read it after a pip install)."""
    slim = json.loads(json.dumps(res))
    for m in slim.get("models", {}).values():
        m.pop("loss_curve", None)
    path = Path(path)
    save_json(slim, path)
    return path


def load_shipped(model_name: str = "smollm2-135m", adapter: str | os.PathLike | None = None,
                 runs: tuple[str, ...] = ("e2",)):
    """``(peft_model, tokenizer)``: the base with the shipped LoRA adapters of ``runs`` (names of
    :data:`SHIPPED_ADAPTERS`, each loaded under its own name; ``model.set_adapter(name)`` picks one,
    ``model.disable_adapter()`` gives the base). ``adapter`` (a folder) replaces the first run's."""
    from e2llm_lite.optional import require
    from e2llm_lite.pretrained import load_pretrained

    require("peft", extra="real", purpose="loading the shipped adapters", load=False)  # before the model loads

    runs = tuple(runs)
    if not runs or any(r not in SHIPPED_ADAPTERS for r in runs):
        raise ValueError(f"runs must be names of shipped adapters ({', '.join(SHIPPED_ADAPTERS)}), got {runs!r}")
    paths = [Path(adapter) if (adapter is not None and i == 0) else SHIPPED_ADAPTERS[r][0] for i, r in enumerate(runs)]
    for path in paths:
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"no LoRA adapter in {path} (adapter_config.json missing)")
    base, tok = load_pretrained(model_name)
    model = loading.load_adapter(base, paths[0], adapter_name=runs[0])
    for r, path in zip(runs[1:], paths[1:]):
        with loading.peft_without_bitsandbytes(model):
            model.load_adapter(str(path), adapter_name=r)
    model.set_adapter(runs[0])
    model.eval()
    return model, tok


def live_demo(model=None, tokenizer=None, gs=(1, 4, 8), passkey_g: int = 8, n_passkey: int = 3,
              passkey_length: int = 2048, ppl_length: int = 1024, seed: int = 0, progress: bool = True,
              runs: tuple[str, ...] = ("e2",)) -> dict:
    """Base vs the shipped adapters of ``runs`` on the real model, live: PPL at each ``g`` and passkey exact
    match at ``passkey_g``, each run with its own scale family (:data:`SHIPPED_ADAPTERS`).

    ``model`` defaults to :func:`load_shipped` ``(runs=runs)``; a model passed in must carry those adapters
    by name (one adapter only: any name). The base is the same model with adapters disabled. ``gs=()``
    skips perplexity, ``n_passkey=0`` skips passkey. Returns ``{"ppl": {"base": {g: ppl}, run: {...}},
    "passkey": {who: [answers]}, "exact": {who: n}, "keys": [...], "seconds": ...}`` and prints a table.
    """
    n_passkey = check_int("n_passkey", n_passkey, 0)
    gs, runs = tuple(int(g) for g in gs), tuple(runs)
    if not gs and not n_passkey:
        raise ValueError("nothing to show: pass some scales gs=(1, 4, 8) and/or n_passkey >= 1")
    if any(r not in SHIPPED_ADAPTERS for r in runs):
        raise ValueError(f"runs must be names of shipped adapters ({', '.join(SHIPPED_ADAPTERS)}), got {runs!r}")
    t0 = time.perf_counter()
    if model is None:
        model, tokenizer = load_shipped(runs=runs)
    named = set(getattr(model, "peft_config", {}))
    doc = eval_docs(tokenizer, ppl_length, 1)[0][0] if gs else None
    depths = [i / max(1, n_passkey - 1) for i in range(n_passkey)] if n_passkey > 1 else [0.5] * n_passkey
    samples = passkey_samples(tokenizer, passkey_length, depths, 1, seed) if n_passkey else []
    res = {"ppl": {}, "passkey": {}, "exact": {}, "keys": [s.key for s in samples], "ppl_length": ppl_length,
           "passkey_length": passkey_length, "passkey_g": passkey_g, "runs": list(runs)}
    for who in ("base",) + runs:
        fam = "linear" if who == "base" else SHIPPED_ADAPTERS[who][1]
        if who == "base":
            ctx = model.disable_adapter()
        else:
            if who in named:
                model.set_adapter(who)
            elif len(runs) > 1:
                raise ValueError(f"the model carries adapters {sorted(named)}, not {who!r}")
            ctx = contextlib.nullcontext()
        with ctx:
            row = {}
            for g in gs:
                with scaled(model, g, fam):
                    row[str(g)] = round(P.perplexity(model, [doc], window=ppl_length, g=1.0).ppl, 2)
            res["ppl"][who] = row
            answers = []
            for s in samples:
                with scaled(model, passkey_g, fam):
                    toks, _ = greedy(model, s.input_ids, s.answer_ids.numel())
                answers.append(tokenizer.decode(toks).strip())
            res["passkey"][who] = answers
            res["exact"][who] = sum(a == s.key for a, s in zip(answers, samples))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if progress:
        parts = []
        if gs:
            parts.append(f"perplexity of one held-out stdlib file ({ppl_length} tokens)")
        if samples:
            parts.append(f"passkey at {passkey_length} tokens, g = {passkey_g}")
        print(" and ".join(parts) + " (E²-YaRN: g applied by YaRN)" * ("e2-yarn" in runs))
        label = {"base": "base", "e2": "E²", "e2-yarn": "E²-YaRN"}
        print(f"{'':9}" + "".join(f"{'PPL g=' + str(g):>11}" for g in gs) + (f"{'passkey':>10}" if samples else ""))
        for who in ("base",) + runs:
            print(f"{label.get(who, who):9}" + "".join(f"{res['ppl'][who][str(g)]:>11.2f}" for g in gs)
                  + (f"{res['exact'][who]:>6}/{len(samples)}" if samples else ""))
        if samples:
            print(f"keys {res['keys']}; " + "; ".join(f"{label.get(w, w)} answered {res['passkey'][w]}" for w in ("base",) + runs))
    return res


def ship_adapter(src: Path, dst: Path, s, run: str = "e2") -> None:
    """Copy the adapter of ``run`` in ``src`` as float16 safetensors + config into the package folder ``dst``
    (written atomically), with ``training.json``: the schedule ``s`` (a :class:`~e2llm_lite.studies.real_model.run.RealSchedule`)
    it was trained with."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(src / "adapter_model.safetensors")).items()}
    cfg = json.loads((src / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = s.model
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / ".adapter_model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, dst / "adapter_model.safetensors")
    atomic_write(dst / "adapter_config.json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    save_json({"schedule": asdict(s), "run": run, "family": s.runs[run][1],
               "note": f"{run} LoRA of SmolLM2-135M-Instruct; see figures/REPORT_real.md"},
              dst / "training.json")
