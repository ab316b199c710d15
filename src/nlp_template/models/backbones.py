"""Building Hugging Face models: pretrained weights by Hub id or local directory, or random weights from a config.

The data decides the label set, vocabulary size and pad id; they are passed in here and written into the model
config, so a user never types the number of labels. A model restored from a checkpoint is rebuilt from the full
config saved in the checkpoint's hyperparameters and never touches the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from nlp_template.utils.errors import UserInputError


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _resolve(name_or_path: str) -> str:
    """A local directory as an absolute path, a Hub id as it is; a path-like string that does not exist fails."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise UserInputError(f"model directory does not exist: {name_or_path} (check model.backbone)")
    return name_or_path


def _load(what: str, name_or_path: str, loader: Any, **kwargs: Any) -> Any:
    try:
        return loader(name_or_path, **kwargs)
    except Exception as error:
        local = Path(name_or_path).is_dir()
        hint = "is it a Hugging Face model directory?" if local else "offline? pass a local directory instead"
        raise UserInputError(f"could not load {what} from '{name_or_path}' ({hint}): {_first_line(error)}") from error


def build_config(
    backbone: str | None, config: dict[str, Any] | None, task_settings: dict[str, Any]
) -> PretrainedConfig:
    """The model config, updated with `config` overrides and the task settings the data decided.

    The base is the backbone's config (Hub/local) or, without a backbone, an inline one (`config.model_type`).
    """
    overrides = dict(config or {})
    if backbone:
        base = _load("model config", _resolve(backbone), AutoConfig.from_pretrained)
    elif "model_type" in overrides:
        base = AutoConfig.for_model(overrides.pop("model_type"))
    else:
        raise UserInputError("set model.backbone (Hub id or directory) or model.config.model_type (e.g. bert)")
    for key, value in {**overrides, **task_settings}.items():
        setattr(base, key, value)
    return base


def build_model(
    auto_class: Any,
    backbone: str | None,
    pretrained: bool,
    config: dict[str, Any] | None,
    task_settings: dict[str, Any],
) -> PreTrainedModel:
    """Build `auto_class` (e.g. `AutoModelForSequenceClassification`) with pretrained or random weights."""
    if not pretrained:
        return auto_class.from_config(build_config(backbone, config, task_settings))
    if not backbone:
        raise UserInputError("model.pretrained=true needs model.backbone (a Hub id or a local directory)")
    # Keep the pretrained vocabulary size (the weights have that shape); grow it only if the tokenizer is larger.
    vocab_size = task_settings.get("vocab_size")
    model_config = build_config(backbone, config, {k: v for k, v in task_settings.items() if k != "vocab_size"})
    model = _load("model weights", _resolve(backbone), auto_class.from_pretrained, config=model_config)
    model.train()  # from_pretrained returns eval mode, and Lightning keeps submodule modes: no dropout otherwise
    if vocab_size and vocab_size > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(vocab_size)
    return model
