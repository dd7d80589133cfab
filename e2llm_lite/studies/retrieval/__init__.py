"""Fig. 6 where it can be measured: a 2-layer base that retrieves a passkey inside its window, and which fine-tune
carries retrieval past it (:mod:`e2llm_lite.studies.retrieval.study`; results ship in ``assets/retrieval.json``)."""
