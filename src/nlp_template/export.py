"""Export entry point: `nlp-export ckpt_path=PATH format=hf [output=DIR]` (or `python -m nlp_template.export`).

`hf` writes a Hugging Face model directory: `config.json` (with `id2label`/`label2id` for classifiers and taggers),
`model.safetensors` and the run's tokenizer. It loads offline with `AutoModelFor...from_pretrained(dir)` and
`transformers.pipeline(task, model=dir)`, and serves as `model.backbone` of a new training run (continue training
from an export). The recurrent classifier is not a Hugging Face model: exporting it as `hf` fails with a one-line
error. An existing non-empty output directory is kept unless `overwrite=true`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from transformers import PreTrainedModel

from nlp_template.data.tokenizer import load_pretrained_tokenizer
from nlp_template.eval import load_run_config, tokenizer_location
from nlp_template.utils.config import CONFIG_DIR, register_resolvers
from nlp_template.utils.errors import UserInputError, exit_on_user_error
from nlp_template.utils.run import apply_extras

log = logging.getLogger(__name__)
register_resolvers()
FORMATS = ("hf",)
# What `transformers.pipeline` calls each task.
PIPELINE_TASKS = {"TextClassifier": "text-classification", "TokenClassifier": "token-classification",
                  "CausalLM": "text-generation"}  # fmt: skip


def export(cfg: DictConfig) -> Path:
    """Write the checkpoint's model in `cfg.format` to `cfg.output`; returns the directory."""
    if cfg.format not in FORMATS:
        raise UserInputError(f"unknown export format '{cfg.format}'; use one of {list(FORMATS)}")
    output = _prepare_output(Path(cfg.output), cfg.overwrite)
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    run_cfg = load_run_config(ckpt_path)
    model = hydra.utils.get_class(run_cfg.model._target_).load_from_checkpoint(ckpt_path, map_location="cpu")
    network = model.network
    if not isinstance(network, PreTrainedModel):
        raise UserInputError(f"{type(model).__name__} is not a Hugging Face model: format=hf cannot export it")
    tokenizer = load_pretrained_tokenizer(tokenizer_location(model.hparams.tokenizer_path, ckpt_path))
    network.save_pretrained(str(output), safe_serialization=True)
    tokenizer.save_pretrained(str(output))
    log.info("Exported %s (pipeline task '%s') to %s", type(model).__name__, pipeline_task(model), output)
    return output


def pipeline_task(model: Any) -> str | None:
    """The `transformers.pipeline` task name of a task module."""
    return PIPELINE_TASKS.get(type(model).__name__)


def _prepare_output(output: Path, overwrite: bool) -> Path:
    occupied = output.is_file() or (output.is_dir() and any(output.iterdir()))
    if occupied:
        if not overwrite:
            raise UserInputError(f"output exists: {output}; choose another output=... or set overwrite=true")
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    output.mkdir(parents=True, exist_ok=True)
    return output


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    apply_extras(cfg)
    print(f"Exported to {export(cfg)}")


if __name__ == "__main__":
    main()
