"""lightning-nlp-template: PyTorch Lightning + Hydra for NLP (README.md, docs/)."""
