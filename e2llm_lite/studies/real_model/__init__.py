"""A real pretrained model on a laptop CPU: SmolLM2-135M (from PyPI), its E², PI and E²-YaRN LoRA fine-tunes and
the shipped adapters (``e2llm-lite reproduce --profile real``; adapters and results in ``assets/``).

* :mod:`~e2llm_lite.studies.real_model.run` — the runner: settings, training data, fine-tunes, phases and resume;
* :mod:`~e2llm_lite.studies.real_model.measure` — perplexity and passkey tables at each scale, past the window;
* :mod:`~e2llm_lite.studies.real_model.demo` — the shipped adapters and results, and the live demo;
* :mod:`~e2llm_lite.studies.real_model.report` — ``REPORT_real.md``, verdicts generated from the numbers;
* :mod:`~e2llm_lite.studies.real_model.plots` — its figures.

What users and notebooks call is importable from here::

    from e2llm_lite.studies import real_model
    real_model.live_demo()               # base vs the shipped E² adapter, live
    real_model.shipped_results()         # the study's numbers, no training
"""
from e2llm_lite.studies.real_model.demo import SHIPPED_ADAPTERS, live_demo, load_shipped, shipped_results
from e2llm_lite.studies.real_model.measure import eval_docs
from e2llm_lite.studies.real_model.report import write_report
from e2llm_lite.studies.real_model.run import SCHEDULES, RealRun, RealSchedule, reproduce

__all__ = ["load_shipped", "live_demo", "shipped_results", "SHIPPED_ADAPTERS", "eval_docs", "RealSchedule",
           "SCHEDULES", "RealRun", "write_report", "reproduce"]
