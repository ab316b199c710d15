"""Pre-flight checks: config mistakes found before anything is built, each one line naming the key, value and fix.

The entry points call `preflight(cfg)` first, so a mistyped value fails in a second with `error: ...` instead of a
traceback minutes later (after the data was tokenized) from deep inside Lightning or torch:

- types, generically: every config node with a `_target_` (trainer, model and its optimizer and scheduler,
  callbacks, loggers) is compared with the signature of what it builds. A parameter annotated with numbers only
  (`max_epochs: int | None`, `lr: float | Tensor`) must get a number, a `bool` one true/false, a `Literal` one of
  its listed values. Data modules are left out: they validate their own settings with messages of their own;
- `seed`: a whole number from 0 to 2**32 - 1, or null;
- the trainer's length: `max_epochs=-1` means "until `max_steps`" (Lightning's infinite training), which a
  learning-rate schedule cannot be fitted to unless `max_steps` is set;
- the accelerator: `gpu`/`cuda` needs a CUDA GPU, `mps` Apple's Metal, and `devices` no more GPUs than there are;
- `data.max_length` against the model's position embeddings (a longer input crashes the model mid-epoch).
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal, Union

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.errors import UserInputError

MAX_SEED = 2**32 - 1  # numpy's limit, which Lightning's seed_everything enforces
# Config groups whose nodes are checked against the signatures of their `_target_`s.
TYPED_GROUPS = ("trainer", "model", "callbacks", "logger")


def preflight(cfg: DictConfig) -> None:
    """Refuse, in one line each, config values that would fail or silently misbehave once the run is built."""
    check_seed(cfg)
    check_types(cfg)
    check_trainer_length(cfg)
    check_accelerator(cfg)
    check_max_length(cfg)


def check_seed(cfg: DictConfig) -> None:
    """`seed` is null or a whole number Lightning and numpy accept."""
    seed = cfg.get("seed")
    if seed is None:
        return
    if isinstance(seed, str) and seed.strip().isdigit():  # e.g. seed=${oc.env:SEED}: environment values are strings
        raise UserInputError(f"seed is the string {seed!r}, not a number (values read from the environment are"
                             " strings); decode it: seed='${oc.decode:${oc.env:SEED,42}}'")  # fmt: skip
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise UserInputError(f"seed must be a whole number from 0 to {MAX_SEED} (or null), got {seed!r}; e.g. seed=42")


# ------------------------------------------------------------------------------------------------------ types
def check_types(cfg: DictConfig) -> int:
    """Every value of a `_target_` node of `TYPED_GROUPS` against the type its parameter declares.

    Returns how many values were compared (tests check that the shipped configs are really looked at).
    """
    checked = 0
    for group in TYPED_GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        try:
            values = OmegaConf.to_container(node, resolve=True)
        except Exception:  # an interpolation that cannot resolve here is reported where it is used
            continue
        for path, target, settings in _target_nodes(values, group):
            checked += _check_arguments(path, target, settings)
    return checked


def _target_nodes(value: Any, path: str) -> Iterator[tuple[str, str, dict]]:
    """(path, target, settings) of every dict with a `_target_` in `value`, nested ones included."""
    if isinstance(value, dict):
        if isinstance(value.get("_target_"), str):
            yield path, value["_target_"], value
        for key, item in value.items():
            if not str(key).startswith("_"):
                yield from _target_nodes(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _target_nodes(item, f"{path}[{index}]")


def _check_arguments(path: str, target: str, settings: dict) -> int:
    parameters = _parameters(target)
    checked = 0
    for key, value in settings.items():
        parameter = parameters.get(str(key))
        if parameter is None or value is None or str(key).startswith("_"):
            continue
        checked += 1
        problem = _type_problem(parameter.annotation, value)
        if problem:
            example = _example(parameter, problem, value)
            raise UserInputError(f"{path}.{key} must be {problem}, got {value!r}; e.g. {path}.{key}={example}")
    return checked


def _parameters(target: str) -> dict[str, inspect.Parameter]:
    """The parameters of what `target` names, annotations evaluated; {} when it cannot be imported or inspected.

    A target that does not import is left to the instantiation, which reports it.
    """
    try:
        obj = hydra.utils.get_object(target)
    except Exception:
        return {}
    try:
        return dict(inspect.signature(obj, eval_str=True).parameters)
    except Exception:  # annotations naming types that only exist for type checkers: the types are unknown
        return {}


def _type_problem(annotation: Any, value: Any) -> str | None:
    """What `value` must be according to `annotation` ("a whole number", ...), or None when it fits (or unknown)."""
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    members = tuple(member for member in members if member is not type(None))
    if members and all(typing.get_origin(member) is Literal for member in members):
        allowed = _literal_choices(annotation)
        return None if value in allowed else f"one of {allowed}"
    kinds = set()
    for member in members:
        if member is torch.Tensor:  # `lr: float | Tensor`: a config gives the float
            continue
        if member not in (int, float, bool):
            return None  # anything else (str, lists, classes) is not checked here
        kinds.add(member)
    if not kinds:
        return None
    if isinstance(value, bool):  # a bool is an int to Python, but not a number a user meant
        return None if bool in kinds else _kind_name(kinds)
    if float in kinds:
        return None if isinstance(value, (int, float)) else _kind_name(kinds)
    return None if int in kinds and isinstance(value, int) else _kind_name(kinds)


def _kind_name(kinds: set[type]) -> str:
    """`{int}` -> "a whole number", `{int, bool}` -> "a whole number or true/false", ..."""
    names = ["a number" if float in kinds else "a whole number"] if kinds - {bool} else []
    return " or ".join([*names, "true/false"]) if bool in kinds else names[0]


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _example(parameter: inspect.Parameter, problem: str, value: Any) -> Any:
    """An example value for the fix: the closest allowed choice, or the parameter's default where it fits."""
    default = parameter.default
    if problem.startswith("one of"):
        choices = _literal_choices(parameter.annotation)
        close = difflib.get_close_matches(str(value), [str(choice) for choice in choices], n=1, cutoff=0.5)
        return close[0] if close else choices[0]
    if problem == "true/false" or ("true/false" in problem and isinstance(default, bool)):
        return "true"
    whole = problem.startswith("a whole number")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return int(default) if whole else default
    return 10 if whole else 1.0


def _literal_choices(annotation: Any) -> list[Any]:
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    return [choice for member in members if typing.get_origin(member) is Literal for choice in typing.get_args(member)]


# -------------------------------------------------------------------------------------------------- trainer
def check_trainer_length(cfg: DictConfig) -> None:
    """`max_epochs` of -1 (until `max_steps`) or more, and `max_steps` set when `max_epochs=-1` feeds a schedule."""
    trainer = cfg.get("trainer")
    if not isinstance(trainer, DictConfig):
        return
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if _is_int(epochs) and epochs < -1:
        raise UserInputError(f"trainer.max_epochs must be a positive whole number (or -1: until trainer.max_steps),"
                             f" got {epochs}; e.g. trainer.max_epochs=10")  # fmt: skip
    if _is_int(steps) and steps < -1:
        raise UserInputError(f"trainer.max_steps must be a positive whole number (or -1: no limit), got {steps};"
                             " e.g. +trainer.max_steps=1000")  # fmt: skip
    scheduled = bool(cfg.get("model") and cfg.model.get("scheduler"))
    if epochs == -1 and steps in (None, -1) and scheduled:
        # Lightning trains forever then; the learning-rate schedule needs its length (it would be infinite).
        raise UserInputError(
            "trainer.max_epochs=-1 trains until trainer.max_steps, which is not set, and the learning-rate schedule"
            " (model.scheduler) needs a length; set +trainer.max_steps=1000 (or trainer.max_epochs=10)"
        )


def check_accelerator(cfg: DictConfig) -> None:
    """The accelerator exists on this machine, with as many devices as asked for."""
    trainer = cfg.get("trainer")
    if not isinstance(trainer, DictConfig):
        return
    accelerator = str(trainer.get("accelerator") or "auto").lower()
    if accelerator == "gpu" and not torch.cuda.is_available() and torch.backends.mps.is_available():
        return  # Lightning maps "gpu" to Apple's Metal (MPS) where there is no CUDA
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise UserInputError(
                f"trainer.accelerator={accelerator}, but this machine has no CUDA GPU (torch.cuda.is_available() is"
                " false); train on the CPU with trainer=cpu (or trainer.accelerator=cpu), or run where a GPU is"
            )
        count, devices = torch.cuda.device_count(), trainer.get("devices")
        if _is_int(devices) and devices > count:
            raise UserInputError(f"trainer.devices={devices}, but this machine has {count} CUDA GPU(s); set"
                                 f" trainer.devices={count} (or auto)")  # fmt: skip
    elif accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserInputError(
            "trainer.accelerator=mps, but Apple's Metal (MPS) is not available here; train on the CPU with trainer=cpu"
            " (or trainer.accelerator=cpu)"
        )


# ------------------------------------------------------------------------------------------ input length
def check_max_length(cfg: DictConfig) -> None:
    """`data.max_length` fits the position embeddings of the model the config builds (before anything is built).

    Language-model data cuts blocks of `data.block_size` instead (the model checks that one itself).
    """
    data, model = cfg.get("data"), cfg.get("model")
    if not isinstance(data, DictConfig) or not isinstance(model, DictConfig) or "block_size" in data:
        return
    max_length = data.get("max_length")
    if _is_int(max_length):
        check_positions(max_length, _configured_positions(model))


def check_positions(max_length: int, positions: int | None, key: str = "data.max_length") -> None:
    """Refuse a `max_length` longer than the model's `positions` (None: the model has no such limit)."""
    if positions and max_length > positions:
        raise UserInputError(
            f"{key}={max_length} is larger than the model's {positions} position embeddings: an input longer than"
            f" {positions} tokens would crash it; set {key}={positions} or less"
        )


def network_positions(model: Any) -> int | None:
    """The usable positions of a built task module's Hugging Face network (None: not such a network)."""
    config = getattr(getattr(model, "network", None), "config", None)
    return usable_positions(config) if config is not None else None


# Models whose position ids start after the padding index (RoBERTa's `create_position_ids_from_input_ids`): of
# `max_position_embeddings` (514 for roberta-base), `pad_token_id + 1` are never used by a token (512 are usable).
PADDING_OFFSET_MODELS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
                                   "longformer", "data2vec-text", "ibert", "mpnet"})  # fmt: skip


def usable_positions(config: Any) -> int | None:
    """How many tokens a Hugging Face config's position embeddings can hold (None: no such limit)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not _is_int(positions):
        return None
    if getattr(config, "model_type", None) in PADDING_OFFSET_MODELS:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions


def _configured_positions(model: DictConfig) -> int | None:
    """`max_position_embeddings` of the Hugging Face config the model would build (None: none, or unknown here).

    Only models that build a Hugging Face network from `backbone`/`config` (the parameter `config`) are asked; a
    model that only borrows a backbone's embeddings (the RNN classifier) has no position limit. A backbone is read
    from its local directory or the local Hub cache only (never downloaded twice); one that cannot be read here
    (not downloaded yet, a typo) is left to the model, which explains it.
    """
    from transformers import AutoConfig

    try:
        parameters = _parameters(str(model.get("_target_", "")))
        if "config" not in parameters or "backbone" not in parameters:
            return None
        settings = OmegaConf.to_container(model, resolve=True)
        overrides = dict(settings.get("config") or {})
        if settings.get("backbone"):
            config = AutoConfig.from_pretrained(str(settings["backbone"]), local_files_only=True)
        else:
            config = AutoConfig.for_model(overrides.pop("model_type"))
        for key, value in overrides.items():  # as models/backbones.py builds it
            setattr(config, key, value)
    except Exception:
        return None
    return usable_positions(config)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
