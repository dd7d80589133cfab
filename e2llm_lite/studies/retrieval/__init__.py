"""Fig. 6 where it can be measured: a 2-layer base that retrieves a passkey inside its window, and which fine-tune
carries retrieval past it (``e2llm-lite reproduce --only retrieval``; results ship in ``assets/retrieval.json``).

* :mod:`~e2llm_lite.studies.retrieval.profiles` — the study's sizes (``full``, ``quick``), runs and Fig. 6 methods;
* :mod:`~e2llm_lite.studies.retrieval.base` — the retrieval base and its pre-training recipe;
* :mod:`~e2llm_lite.studies.retrieval.measure` — the Fig. 6 grid and the exact-vs-steps curve;
* :mod:`~e2llm_lite.studies.retrieval.run` — the runner: fine-tunes, grids, resume, the command, shipped results;
* :mod:`~e2llm_lite.studies.retrieval.report` — the summary, verdicts and ``REPORT_retrieval.md``;
* :mod:`~e2llm_lite.studies.retrieval.plots` — its figures.

The public names are importable from here::

    from e2llm_lite.studies import retrieval
    study = retrieval.shipped_results()   # grids, curves and verdicts, no training
    retrieval.plot_fig6(study)
"""
from e2llm_lite.studies.retrieval.measure import curve_point, evaluate_grid
from e2llm_lite.studies.retrieval.plots import plot_fig6, plot_steps
from e2llm_lite.studies.retrieval.profiles import GRID_STEMS, METHODS, RETRIEVAL_PROFILES, RUNS, RetrievalProfile
from e2llm_lite.studies.retrieval.report import summarise, write_report
from e2llm_lite.studies.retrieval.run import SHIPPED, RetrievalRun, reproduce, ship_results, shipped_results

__all__ = ["RetrievalProfile", "RETRIEVAL_PROFILES", "METHODS", "GRID_STEMS", "RUNS", "RetrievalRun",
           "evaluate_grid", "curve_point", "summarise", "write_report", "plot_fig6", "plot_steps", "SHIPPED",
           "ship_results", "shipped_results", "reproduce"]
