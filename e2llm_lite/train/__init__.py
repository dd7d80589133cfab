"""Training wing: the one training loop (Algorithm 1), model loading modes, the planner, the train CLI.

* :mod:`e2llm_lite.train.loop` — ``TrainConfig`` and ``train``: Algorithm 1 of E²-LLM (arXiv 2401.06951, §3.2)
  around any Hugging Face causal LM on 🤗 accelerate (1 to N processes: DDP, FSDP, DeepSpeed), with atomic
  checkpoints and exact resume;
* :mod:`e2llm_lite.train.distributed` — global batch = per device × accumulation × processes, engine checks;
* :mod:`e2llm_lite.train.hf_trainer` — E² for a stock ``transformers.Trainer`` (collator + callback);
* :mod:`e2llm_lite.train.loading` — load a model for full / LoRA / QLoRA fine-tuning, optimisers, export;
* :mod:`e2llm_lite.train.planner` — memory and time per GPU for E² at R vs PI at L′ (paper §1, Fig. 1);
* :mod:`e2llm_lite.train.finetune` — the paper's recipe end to end and the ``e2llm-lite train`` CLI.
* :mod:`e2llm_lite.train.pretrain` — a small base from scratch: its spec, token stream and saved folder
  (the studies' bases).

Imports point downward only: this wing uses the top-level method modules, never ``eval`` or a study.
"""
