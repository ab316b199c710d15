#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) on a CUDA machine, from the repository root; results in $OUT (default
# bench/results/gpu). About 10 minutes on one H100 (four runs: bf16, bf16 + compile, fp16, fp32; with 2+ GPUs a fifth,
# bf16 as a two-node job: two torchrun agents on this host, one GPU each).
#  - With network access: `make install` (pip picks a CUDA build of torch), then this script uses .venv.
#  - Without network, where python3 already holds torch, lightning and transformers (e.g. a lent GPU machine):
#    run bench/fetch_gpu_wheels.sh beforehand on a machine with PyPI access; this script installs the wheels from
#    .whl/ into /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
PYTHON=python3
if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  PYTHON=.venv/bin/python
elif [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" bench/gpu_check.py --out "$OUT"
