"""Prediction entry point: `nlp-predict ckpt_path=PATH input=FILE [output=FILE]` (or `python -m nlp_template.predict`).

Loads the checkpoint's model and data module (`inference/checkpoints.py`), reads the inputs (`inference/inputs.py`)
with the columns the data module asks for, and lets the task predict (`TaskModule.predict_records`: the data
module's own encoding, dynamic padding, the task's decoding). Writes one JSON line per non-empty input, each with
the input's line number. Empty lines are skipped (they have nothing to predict); over-long inputs are truncated to
the length the model was trained with and flagged. An existing output file is not overwritten unless
`overwrite=true`, and the input file never is (also when `output` names it by another path or a link).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.config import CONFIG_DIR, register_resolvers
from nlp_template.utils.errors import UserInputError, exit_on_user_error, one_line_config_errors

log = logging.getLogger(__name__)
register_resolvers()


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """Predict for every non-empty input record; write them to `cfg.output`; return them."""
    # Imported here, not at the top: `nlp-predict --help` stays fast without torch and Lightning.
    from rich.progress import track

    from nlp_template.inference.checkpoints import load_run
    from nlp_template.inference.inputs import read_records

    if not isinstance(cfg.batch_size, int) or isinstance(cfg.batch_size, bool) or cfg.batch_size < 1:
        raise UserInputError(f"batch_size must be a positive whole number, got {cfg.batch_size!r}; e.g. batch_size=64")
    output = _check_output(cfg.output, cfg.overwrite, cfg.input)
    run = load_run(cfg.ckpt_path)
    datamodule = run.datamodule(cfg.get("data"))
    columns = datamodule.prediction_columns()
    hints = {column: key for key, column in datamodule.columns().items()}
    records = read_records(cfg.input, columns, hints, datamodule.string_columns())
    kept = [record for record in records if any(str(record[column]).strip() for column in columns)]
    if len(kept) < len(records):
        log.info("Skipped %d empty line(s)", len(records) - len(kept))
    settings = OmegaConf.to_container(cfg.settings, resolve=True) if cfg.get("settings") is not None else {}
    predictions = run.model.predict_records(kept, datamodule, batch_size=cfg.batch_size, **settings)
    results = list(track(predictions, total=len(kept), description="Predicting", disable=len(kept) < 256))
    _write(results, output)
    return results


def _check_output(output: str, overwrite: bool, input_path: str) -> str:
    if output == "-" or not Path(output).exists():
        return output
    # The same file by another spelling (`./in.txt`, `dir/../in.txt`), a symbolic or a hard link: samefile compares
    # the files themselves. Writing would replace the inputs with their predictions, so overwrite=true does not apply.
    source = Path(input_path).expanduser()
    if input_path != "-" and source.exists() and os.path.samefile(output, source):
        raise UserInputError(f"output {output} is the input file {input_path}; predictions never replace their input:"
                             " choose another output=...")  # fmt: skip
    if not overwrite:
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
    from nlp_template.utils.checks import preflight
    from nlp_template.utils.run import apply_extras

    preflight(cfg)
    apply_extras(cfg)
    predict(cfg)


if __name__ == "__main__":
    main()
