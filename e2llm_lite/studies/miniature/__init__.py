"""The paper's experiments in miniature, on a laptop CPU: corpus → pretrain → reproduce → report.

* :mod:`e2llm_lite.studies.miniature.pretrain` — rebuild the shipped 1.4 M-parameter base (``assets/``);
* :mod:`e2llm_lite.studies.miniature.reproduce` — ``e2llm-lite reproduce``: Tables 3–5 and Figs. 4–6 analogues;
* :mod:`e2llm_lite.studies.miniature.report` — figures, claim verdicts and ``REPORT.md``.

The top of the import graph: it may use ``train`` and ``eval``; nothing imports it.
"""
