"""Compare the packages installed in this environment with a lock: what an unpinned install resolved differently.

    python scripts/lock_drift.py requirements/test-py3.11.txt [requirements/real-model-py3.11.txt ...]

Prints one line per difference (``name: lock X -> installed Y``, ``name: not in the lock (installed Y)``,
``name: in the lock, not installed``) and a count; exits 0 (drift is information: the tests decide whether it
breaks anything). Packages the locks leave out on purpose (torch, installed first from the CPU wheel; the
project itself; pip's own tools) are skipped.
"""
from __future__ import annotations

import importlib.metadata
import re
import sys

SKIP = {"torch", "e2llm-lite", "pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: str) -> dict[str, str]:
    """``{name: version}`` of the ``name==version`` lines of a pip-compile / uv lock."""
    pins = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if m:
            pins[canonical(m[1])] = m[2]
    return pins


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def drift(lock: dict[str, str], have: dict[str, str]) -> list[str]:
    lines = []
    for name in sorted((set(lock) | set(have)) - SKIP):
        a, b = lock.get(name), have.get(name)
        if a == b:
            continue
        if a is None:
            lines.append(f"{name}: not in the lock (installed {b})")
        elif b is None:
            lines.append(f"{name}: in the lock, not installed")
        else:
            lines.append(f"{name}: lock {a} -> installed {b}")
    return lines


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    lock: dict[str, str] = {}
    for p in paths:
        lock.update(read_lock(p))
    lines = drift(lock, installed())
    for line in lines:
        print(f"  {line}")
    print(f"drift from {', '.join(paths)}: {len(lines)} package(s) differ")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
