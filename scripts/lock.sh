#!/usr/bin/env bash
# Refresh the locks of CI's environments: `bash scripts/lock.sh` (needs PyPI; about 30 s).
#
# requirements/*.in hold ranges (the package's own extras are the source of truth); each lock
# requirements/<name>-py<X.Y>.txt pins every package with its hashes, for the Python that runs this script.
# torch stays out of the locks: it is installed first, from the CPU wheel (`pip install torch==2.13.0`),
# and the locks are resolved against that wheel's own dependencies (no CUDA packages).
# Users' installs stay ranges (pyproject.toml); only CI and the README's test command use the locks.
# `E2LLM_UNPINNED=1 bash .ci/run` installs the ranges instead and prints how the resolution drifted.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.10   # the lock tool, pinned too
TORCH=2.13.0+cpu     # the torch build CI installs before the locks
py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
tool=$(mktemp -d)
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool/venv"
"$tool/venv/bin/pip" install -q "uv==$UV_VERSION"
echo "torch==$TORCH" > "$tool/torch.txt"
compile() {  # compile <in-file> <out-file> [uv options...]
  local src=$1 out=$2; shift 2
  "$tool/venv/bin/uv" pip compile "$src" -o "$out" --python-version "$py" --generate-hashes --quiet \
    --find-links /opt/wheels --constraint "$tool/torch.txt" --no-emit-package torch \
    --no-emit-package e2llm-lite --annotation-style line --custom-compile-command "bash scripts/lock.sh" "$@"
  echo "$out: $(grep -c '==' "$out") packages"
}
compile requirements/core.in "requirements/core-py$py.txt"
compile requirements/test.in "requirements/test-py$py.txt"
compile requirements/real-model.in "requirements/real-model-py$py.txt" --no-deps
