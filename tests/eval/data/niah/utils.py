"""Loader and scorer for the local RULER-style needle sample (``niah_local.jsonl``).

The rows were made by lm-eval's own RULER generator (``lm_eval.tasks.ruler.prepare_niah.generate_samples``,
haystack ``repeat``, seed 42) with the shipped miniature tokenizer at max_seq_length 384, 640 and 1024.
Scoring uses lm-eval's RULER functions (``postprocess_pred``, ``string_match_all``), imported, not copied.
"""
from pathlib import Path

import datasets
from lm_eval.tasks.ruler.common_utils import postprocess_pred, string_match_all

HERE = Path(__file__).resolve().parent


def load_niah(**kwargs):
    return {"test": datasets.load_dataset("json", data_files=str(HERE / "niah_local.jsonl"), split="train")}


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"string_match": string_match_all(postprocess_pred(results), [doc["outputs"]])}
