"""A real pretrained model on a laptop CPU: SmolLM2-135M (from PyPI), its E², PI and E²-YaRN LoRA fine-tunes and
the shipped adapters (:mod:`e2llm_lite.studies.real_model.profile`; adapters and results in ``assets/``)."""
