"""Building Hugging Face models: pretrained weights by Hub id or local directory, or random weights from a config.

The data decides the label set, vocabulary size and pad id; they are passed in here and written into the model
config, so a user never types the number of labels. A model restored from a checkpoint is rebuilt from the full
config saved in the checkpoint's hyperparameters and never touches the network.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from nlp_template.utils.errors import UserInputError
from nlp_template.utils.hub import load_or_explain, resolve_name_or_path


def build_config(
    backbone: str | None, config: dict[str, Any] | None, task_settings: dict[str, Any]
) -> PretrainedConfig:
    """The model config, updated with `config` overrides and the task settings the data decided.

    The base is the backbone's config (Hub/local) or, without a backbone, an inline one (`config.model_type`).
    """
    overrides = dict(config or {})
    if backbone:
        base = load_or_explain(
            "model config", resolve_name_or_path(backbone, "model", "model.backbone"), AutoConfig.from_pretrained
        )
    elif "model_type" in overrides:
        # Through the constructor, so fields derived from others are derived from these (ModernBERT's per-layer
        # `layer_types` from `num_hidden_layers`); set afterwards, they would keep the defaults' values.
        base = AutoConfig.for_model(overrides.pop("model_type"), **overrides)
        overrides = {}
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
    path = resolve_name_or_path(backbone, "model", "model.backbone")
    model = load_or_explain("model weights", path, auto_class.from_pretrained, config=model_config)
    model.train()  # from_pretrained returns eval mode, and Lightning keeps submodule modes: no dropout otherwise
    if vocab_size and vocab_size > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(vocab_size)
    return model


def model_from_config(auto_class: Any, config: dict[str, Any]) -> PreTrainedModel:
    """Rebuild a network with random weights from a full saved config (`config.to_dict()`), offline."""
    settings = dict(config)
    return auto_class.from_config(AutoConfig.for_model(settings.pop("model_type"), **settings))
