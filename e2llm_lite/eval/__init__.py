"""Evaluation wing: perplexity (paper Table 3, Fig. 5), passkey / needle retrieval (Fig. 6), the eval CLI.

* :mod:`e2llm_lite.eval.perplexity` — sliding-window perplexity with every protocol choice named;
* :mod:`e2llm_lite.eval.retrieval` — passkey and needle-in-a-haystack, exact match, depth × length grids;
* :mod:`e2llm_lite.eval.harness` — the ``e2llm`` model for EleutherAI's lm-evaluation-harness (g per request);
* :mod:`e2llm_lite.eval.longbench` — LongBench (Tables 1–2) and RULER NIAH through the harness;
* :mod:`e2llm_lite.eval.proof_pile` — proof-pile perplexity with Table 3's selection and grid;
* :mod:`e2llm_lite.eval.cli` — ``e2llm-lite eval``.

Imports point downward only: this wing uses the top-level method modules, never ``train`` or ``miniature``.
"""
