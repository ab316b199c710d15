"""Serving entry point: `nlp-serve ckpt_path=PATH|export_dir=DIR [host=127.0.0.1] [port=8000]` (or `python -m ...`).

Loads a checkpoint as `nlp-predict` does, or an `nlp-export` directory (hf, onnx, torchscript) as the same task
around the exported network (`serving/predictor.py`), and serves it over HTTP with FastAPI and uvicorn
(`serving/app.py`): `POST /predict` takes the records `nlp-predict` reads (as JSON) and answers with its results;
requests that arrive together run as one model batch (`serving/batcher.py`). Ctrl-C or SIGTERM stops it gracefully:
no new connections, the requests in flight are answered.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.config import CONFIG_DIR, register_resolvers
from nlp_template.utils.errors import UserInputError, exit_on_user_error, one_line_config_errors

log = logging.getLogger(__name__)
register_resolvers()


def check_settings(cfg: DictConfig) -> None:
    """Refuse settings the server cannot run with, in one line each."""
    if bool(cfg.get("ckpt_path")) == bool(cfg.get("export_dir")):
        raise UserInputError("give what to serve: ckpt_path=... (an nlp-train checkpoint) or export_dir=... (an"
                             " nlp-export directory: hf, onnx, torchscript or executorch), not both")  # fmt: skip
    for key in ("port", "max_batch_size", "max_body_bytes"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "port" else 1):
            raise UserInputError(f"{key} must be a positive whole number, got {value!r}")
    if cfg.port > 65535:
        raise UserInputError(f"port must be at most 65535, got {cfg.port}")
    if not isinstance(cfg.batch_timeout, int | float) or isinstance(cfg.batch_timeout, bool) or cfg.batch_timeout < 0:
        raise UserInputError(f"batch_timeout must be a number of seconds >= 0, got {cfg.batch_timeout!r}")


def serve(cfg: DictConfig) -> None:
    """Load the checkpoint or export and serve it until stopped."""
    import torch

    from nlp_template.serving.predictor import load_predictor

    check_settings(cfg)
    try:
        import uvicorn

        from nlp_template.serving.app import create_app
    except ImportError as error:
        raise UserInputError(f"nlp-serve needs FastAPI and uvicorn ({error}): pip install -e '.[serve]'") from error
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    data = OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else None
    settings = OmegaConf.to_container(cfg.settings, resolve=True) if cfg.get("settings") else None
    predictor = load_predictor(cfg.ckpt_path, cfg.export_dir, cfg.get("threads"), data, settings)
    app = create_app(predictor, cfg.max_batch_size, float(cfg.batch_timeout), cfg.max_body_bytes)
    log.info("Serving %s (%s) on http://%s:%d (POST /predict, GET /health /info /metrics)",
             cfg.ckpt_path or cfg.export_dir, predictor.backend, cfg.host, cfg.port)  # fmt: skip
    uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning")).run()


@one_line_config_errors
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="serve")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    from nlp_template.utils.run import apply_extras

    apply_extras(cfg)
    serve(cfg)


if __name__ == "__main__":
    main()
