"""Prediction entry point: `nlp-predict ckpt_path=PATH input=FILE [output=FILE]` (or `python -m nlp_template.predict`).

Loads the checkpoint's model and the run's tokenizer, reads the inputs (`utils/inputs.py`), predicts in batches with
dynamic padding (`models/predictions.py`) and writes one JSON line per non-empty input, each with the input's line
number. Empty lines are skipped (they have nothing to predict); over-long inputs are truncated to the length the
model was trained with and flagged. An existing output file is not overwritten unless `overwrite=true`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from rich.progress import track

from nlp_template.data.tokenizer import load_pretrained_tokenizer
from nlp_template.eval import load_task_module, tokenizer_location
from nlp_template.models import predictions
from nlp_template.utils.config import CONFIG_DIR, register_resolvers
from nlp_template.utils.errors import UserInputError, exit_on_user_error, one_line_config_errors
from nlp_template.utils.inputs import read_records
from nlp_template.utils.run import apply_extras

log = logging.getLogger(__name__)
register_resolvers()


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """Predict for every non-empty input record; write them to `cfg.output`; return them."""
    if not isinstance(cfg.batch_size, int) or isinstance(cfg.batch_size, bool) or cfg.batch_size < 1:
        raise UserInputError(f"batch_size must be a positive whole number, got {cfg.batch_size!r}; e.g. batch_size=64")
    output = _check_output(cfg.output, cfg.overwrite)
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    run_cfg, model = load_task_module(ckpt_path)
    model.eval()
    tokenizer = load_pretrained_tokenizer(tokenizer_location(model.hparams.tokenizer_path, ckpt_path))
    data = run_cfg.data
    text_column = cfg.text_column or data.get("text_column") or "text"
    pair_column = cfg.text_pair_column or data.get("text_pair_column")
    records = read_records(cfg.input, text_column, pair_column)
    if pair_column and records and "text_pair" not in records[0]:
        raise UserInputError(f"this model reads text pairs: give JSONL or CSV input with columns '{text_column}' and"
                             f" '{pair_column}' (or set text_column/text_pair_column)")  # fmt: skip
    kept = [record for record in records if record["text"].strip()]
    if len(kept) < len(records):
        log.info("Skipped %d empty line(s)", len(records) - len(kept))
    results = list(_run(model, tokenizer, kept, cfg, data.get("max_length") or data.get("block_size") or 512))
    _write(results, output)
    return results


def _run(model: Any, tokenizer: Any, records: list[dict], cfg: DictConfig, max_length: int) -> Any:
    kind = type(model).__name__
    if kind == "CausalLM":
        items = track(records, description="Generating", disable=len(records) < 16)
        return predictions.continue_texts(model, tokenizer, items, **cfg.generation)
    batches = list(predictions.batched(records, cfg.batch_size))
    batches = track(batches, description="Predicting", disable=len(batches) < 8)
    if kind == "TokenClassifier":
        return predictions.tag_entities(model, tokenizer, batches, max_length)
    return predictions.classify(model, tokenizer, batches, max_length)


def _check_output(output: str, overwrite: bool) -> str:
    if output != "-" and Path(output).exists() and not overwrite:
        raise UserInputError(f"output file exists: {output}; choose another output=... or set overwrite=true")
    return output


def _write(results: list[dict], output: str) -> None:
    lines = "".join(json.dumps(result, ensure_ascii=False) + "\n" for result in results)
    if output == "-":
        sys.stdout.write(lines)
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(lines)
    log.info("%d predictions written to %s", len(results), output)


@one_line_config_errors
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    apply_extras(cfg)
    predict(cfg)


if __name__ == "__main__":
    main()
