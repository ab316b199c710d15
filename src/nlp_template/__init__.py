"""lightning-nlp-template: PyTorch Lightning + Hydra for NLP (README.md, docs/)."""

import logging

# Optional dependencies that log at import time about things this project does not use (kept light: no imports):
# torchao (pulled in by ExecuTorch's XNNPACK backend, then imported by peft) fails to load its CUDA kernels on a
# CPU machine, and registers enums with torch's pytree, which logs a deprecation. Real errors still show.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
