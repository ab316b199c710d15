"""Train several runs one after another in the ranks `torchrun` started; rank 0 writes every run's metrics.

`torchrun --nproc-per-node W train_many.py JOBS_JSON OUT_JSON`: JOBS_JSON maps a name to `{"overrides": [...],
"run_dir": ..., "cache_dir": ...}` (the overrides name a DDP trainer with `trainer.devices=W`). One process group
serves every run, so the imports and the group are paid once (tests/test_ddp_metrics.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from nlp_template.train import train
from nlp_template.utils.config import compose_config

if __name__ == "__main__":
    jobs_path, out_path = sys.argv[1:]
    results = {}
    for name, job in json.loads(Path(jobs_path).read_text()).items():
        cfg = compose_config("train", job["overrides"], job["run_dir"], job["cache_dir"], use_local=False)
        results[name] = train(cfg)
    if dist.get_rank() == 0:
        Path(out_path).write_text(json.dumps(results, indent=1))
