"""Parameter-efficient fine-tuning with `peft`: LoRA (or another peft method) around a task's Hugging Face network.

`model.peft=lora` freezes the network and trains low-rank updates of its chosen linear layers; the task's new head
(a classifier, QA outputs, a multiple-choice scorer) stays fully trainable (`modules_to_save`), since it starts from
random weights. Language models (causal, masked, seq2seq) have no new head: only the adapters train.

Target modules: `model.peft_settings.target_modules`, else peft's table for the architecture (BERT: query, value;
GPT-2: c_attn; T5: q, v; ...), else every linear layer of the backbone (ModernBERT: Wqkv, Wo, Wi). Restricted to the
backbone where the network has one (`base_model_prefix`), so a head layer that shares a name (`dense`) is not
adapted as well as saved.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from nlp_template.utils.errors import UserInputError

# Checkpoint key of runs saved with `checkpoint.trainable_only=true` (`callbacks/trainable_only.py`).
TRAINABLE_ONLY_KEY = "trainable_only"
# Our names for LoRA's settings -> peft's `LoraConfig` field names.
LORA_NAMES = {"r": "r", "alpha": "lora_alpha", "dropout": "lora_dropout", "target_modules": "target_modules"}


def apply_peft(network: torch.nn.Module, method: str, settings: dict[str, Any] | None, train_heads: bool) -> Any:
    """`network` wrapped by peft for `method` (`lora`, `ia3`, `loha`, ...), its head kept trainable if `train_heads`."""
    try:
        import peft
    except ImportError as error:
        raise UserInputError('model.peft needs the peft package: pip install -e ".[peft]"') from error
    config_class = peft.PEFT_TYPE_TO_CONFIG_MAPPING.get(method.upper())
    if config_class is None:
        methods = sorted(name.lower() for name in peft.PEFT_TYPE_TO_CONFIG_MAPPING)
        raise UserInputError(f"model.peft={method} is not a peft method; use one of {methods} (e.g. lora)")
    options = _options(method, settings or {})
    names = options.get("target_modules") or default_targets(network)
    options["target_modules"] = _within_backbone(network, names) if train_heads else list(names)
    if train_heads:
        options["modules_to_save"] = head_modules(network)
    try:
        return peft.get_peft_model(network, config_class(**options))
    except (ValueError, TypeError) as error:
        if "target" in str(error).lower() or "not found" in str(error).lower():
            raise UserInputError(
                f"model.peft_settings.target_modules={list(names)} matches no layer peft can adapt; the linear layers"
                f" of this model are named {sorted(linear_names(network))}"
            ) from error
        raise UserInputError(f"model.peft={method} with settings {options}: {error}") from error


def _options(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Peft config fields from `model.peft_settings` (LoRA's short names mapped; nulls left to peft's defaults)."""
    options = {key: value for key, value in settings.items() if value is not None}
    if method.lower() != "lora":
        return {key: value for key, value in options.items() if key not in ("r", "alpha", "dropout")}
    return {LORA_NAMES.get(key, key): value for key, value in options.items()}


def default_targets(network: torch.nn.Module) -> list[str]:
    """Peft's target modules for this architecture, else the names of every linear layer of the backbone."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    model_type = getattr(getattr(network, "config", None), "model_type", None)
    if model_type in TABLE:
        return list(TABLE[model_type])
    backbone = getattr(network, getattr(network, "base_model_prefix", ""), None) or network
    return sorted(linear_names(backbone))


def linear_names(module: torch.nn.Module) -> set[str]:
    """The last name part of every linear layer (`query`, `Wqkv`, `c_attn`, ...)."""
    linear = (torch.nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers

        linear += (Conv1D,)
    except ImportError:  # pragma: no cover - older transformers
        pass
    return {name.rsplit(".", 1)[-1] for name, child in module.named_modules() if isinstance(child, linear)}


def _within_backbone(network: torch.nn.Module, names: list[str]) -> str | list[str]:
    """A regex matching those layer names inside the backbone only (the whole network if it has no backbone)."""
    prefix = getattr(network, "base_model_prefix", "")
    if not prefix or not hasattr(network, prefix):
        return list(names)
    return rf"{re.escape(prefix)}\..*\.({'|'.join(re.escape(name) for name in names)})"


def head_modules(network: torch.nn.Module) -> list[str]:
    """The network's top-level modules with weights outside the backbone: the task head, trained in full."""
    prefix = getattr(network, "base_model_prefix", "")
    return [name for name, child in network.named_children()
            if name != prefix and any(True for _ in child.parameters())]  # fmt: skip


def is_peft(network: torch.nn.Module) -> bool:
    """Whether `network` is a peft model."""
    return hasattr(network, "peft_config") and hasattr(network, "get_base_model")


def parameter_counts(module: torch.nn.Module) -> dict[str, int]:
    """Trainable and total parameters (each shared tensor once)."""
    seen: dict[int, torch.nn.Parameter] = {id(p): p for p in module.parameters()}
    return {"trainable": sum(p.numel() for p in seen.values() if p.requires_grad),
            "total": sum(p.numel() for p in seen.values())}  # fmt: skip


def fill_frozen_weights(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], backbone: str) -> None:
    """Add to a trainable-only `state_dict` the frozen weights, read from the pretrained `backbone` again.

    Names map from the task module's (`network.base_model.model.bert...query.base_layer.weight` under peft) to the
    pretrained model's (`bert...query.weight`); a head's untrained original (`original_module`) is the pretrained
    model's freshly initialised head, as when the run started.
    """
    from nlp_template.utils.hub import load_or_explain, resolve_name_or_path

    network = module.network.get_base_model() if is_peft(module.network) else module.network
    path = resolve_name_or_path(backbone, "model", "the backbone recorded in this trainable-only checkpoint")
    pretrained = load_or_explain("model weights", path, type(network).from_pretrained, config=network.config)
    weights = pretrained.state_dict()
    for key in module.state_dict():
        if key in state_dict or not key.startswith("network."):
            continue
        name = re.sub(r"^network\.(base_model\.model\.)?", "", key).replace(".base_layer.", ".")
        name = name.replace(".original_module.", ".")
        if name not in weights:
            raise UserInputError(f"{backbone} has no weight {name}, which this trainable-only checkpoint needs; is it"
                                 " the backbone the run was trained from?")  # fmt: skip
        state_dict[key] = weights[name]
