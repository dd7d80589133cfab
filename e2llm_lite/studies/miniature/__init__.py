"""The paper's experiments in miniature, on a laptop CPU: corpus → pretrain → reproduce → report.

* :mod:`e2llm_lite.studies.miniature.pretrain` — ``e2llm-lite pretrain``: rebuild the shipped 1.4 M-parameter
  base (its pieces: :mod:`e2llm_lite.train.pretrain`);
* :mod:`e2llm_lite.studies.miniature.reproduce` — ``e2llm-lite reproduce``: Tables 3–5 and Figs. 4–6 analogues;
* :mod:`e2llm_lite.studies.miniature.report` — claim verdicts and ``REPORT.md``;
* :mod:`e2llm_lite.studies.miniature.plots` — the figures.

How the recipe was found (the levers tried, and what each did) is the lab log ``docs/miniature_lab_log.md``.
A study: it may use ``train`` and ``eval``; no other study imports it.
"""
