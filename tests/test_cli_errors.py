"""A user error is one line on stderr, exit code 2, no traceback — for every subcommand (issue: newcomer's first hour).

Bad values are run through :func:`e2llm_lite.cli.main` in-process (fast); one case also runs the real
entry point in a subprocess, where a traceback would be printed by Python itself.
"""
import subprocess
import sys

import pytest

from e2llm_lite import cli
from e2llm_lite.data import ASSETS

A = str(ASSETS)  # a real local model folder: the shipped miniature base
OUT = "{out}"  # replaced by a folder under tmp_path

#: (argv, a piece of the one-line message)
CASES = [
    (["eval", "--model", "/nonexistent/model", "--lengths", "256"], "'/nonexistent/model': no such file or folder"),
    (["eval", "--model", A], "give --lengths"),
    (["eval", "--model", A, "--lengths", "256", "--g", "0.5"], "--g values must be >= 1"),
    (["eval", "--model", A, "--task", "banana"], "invalid choice: 'banana'"),
    (["eval", "--model", A, "--lengths", "256", "--family", "banana"], "invalid choice: 'banana'"),
    (["eval", "--model", A, "--task", "longbench", "--family", "yarn", "--out", OUT],
     "--family yarn is not available for --task longbench"),
    (["reproduce", "--corpus", "/nonexistent", "--out", OUT, "--work", OUT + "/work"], "'/nonexistent': no such file or folder"),
    (["reproduce", "--base", "/nonexistent", "--out", OUT, "--work", OUT + "/work"], "'/nonexistent': no such folder"),
    (["reproduce", "--steps", "0", "--out", OUT, "--work", OUT + "/work"], "--steps must be >= 1, got 0"),
    (["reproduce", "--profile", "huge"], "invalid choice: 'huge'"),
    (["pretrain", "--corpus", "/nonexistent", "--run-dir", OUT], "'/nonexistent': no such file or folder"),
    (["train", "--scheme", "banana", "--out-dir", OUT], "valid: e2, e2-fixed-scale, e2-no-offset, none, pi"),
    (["train", "--mode", "banana", "--out-dir", OUT], "valid modes: full, lora, qlora"),
    (["train", "--family", "banana", "--out-dir", OUT], "invalid choice: 'banana'"),
    (["train", "--scheme", "yarn", "--out-dir", OUT], "'yarn' is a scale family: family='yarn' (--family yarn)"),
    (["train", "--model", "/nonexistent/model", "--out-dir", OUT], "'/nonexistent/model': no such file or folder"),
    (["plan", "--mode", "banana", "--out", OUT + "/plan"], "valid modes: full, lora, qlora"),
    (["plan", "--seq-len", "0", "--out", OUT + "/plan"], "seq_len must be an integer >= 1"),
    (["demo", "--g", "0"], "--g must be an integer >= 1, got --g=0"),
    (["demo", "--seed", "x"], "invalid int value: 'x'"),
]


@pytest.mark.parametrize("argv, expected", CASES, ids=[" ".join(a[:3]).replace(A, "ASSETS") for a, _ in CASES])
def test_bad_value_is_one_line_exit_2(argv, expected, tmp_path, capsys):
    argv = [a.replace(OUT, str(tmp_path / "out")) for a in argv]
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors (bad choice, bad type) exit from the parser
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == 2, (argv, rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"e2llm-lite {argv[0]}: error: "), lines[0]
    assert expected in lines[0], (expected, lines[0])
    assert "Traceback" not in err + out
    assert not (tmp_path / "out").exists(), "a rejected command must not leave folders behind"


def test_real_entry_point_prints_no_traceback():
    r = subprocess.run([sys.executable, "-m", "e2llm_lite.cli", "train", "--scheme", "banana"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip() == ("e2llm-lite train: error: unknown scheme 'banana'; "
                                "valid: e2, e2-fixed-scale, e2-no-offset, none, pi")
    assert "Traceback" not in r.stderr


def test_missing_optional_package_names_its_extra(monkeypatch, capsys):
    """A lazily imported optional package that is missing: one line naming the extra that installs it."""
    def run(args):
        import peft  # noqa: F401  (blocked below)

    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` -> ModuleNotFoundError(name="peft")
    monkeypatch.setattr("e2llm_lite.train.planner.run", run)
    assert cli.main(["plan"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ('e2llm-lite plan: error: this needs `peft`, which is not installed: '
                   'pip install "e2llm-lite[train]" (or pip install peft)')


def test_extra_for_reads_the_installed_metadata():
    assert cli.extra_for("peft") == "train"
    assert cli.extra_for("torch") == ""  # a core dependency
    assert cli.extra_for("surely_not_a_dependency") is None


def test_real_bugs_keep_their_traceback(monkeypatch):
    def run(args):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr("e2llm_lite.train.planner.run", run)
    with pytest.raises(KeyError):
        cli.main(["plan"])


def test_traceback_on_request(monkeypatch):
    monkeypatch.setenv("E2LLM_LITE_TRACEBACK", "1")
    with pytest.raises(ValueError, match="unknown scheme 'banana'"):
        cli.main(["train", "--scheme", "banana"])
