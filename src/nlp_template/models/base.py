"""`TaskModule`: what every task's LightningModule shares, and the task contract the rest of the project relies on.

The network lives in `self.network` (a Hugging Face model or a plain `nn.Module` whose output has `.loss` and the
fields named in `graph_outputs`), so checkpoints hold `network.*` weights whatever the task. This class owns the
optimizer and scheduler (Hydra partials), the optional `torch.compile` of the network, and the step plumbing: a
task implements `evaluate(batch, stage)` and, for split-level metrics, `log_epoch(stage)`.

Every validation/test metric is a function of the split's examples alone, the same for any batching and any number
of DDP ranks: `log_loss` sums each batch's loss times its count of loss terms (examples, labelled tokens, windows)
in an `ExactMean` metric, whose sums are all-reduced before the division. Lightning's own `self.log(...,
sync_dist=True)` averages per-rank means instead, which is wrong whenever the ranks hold different numbers of
examples (5 examples on 2 ranks: x1.25).

The task contract: everything `nlp-predict`, `nlp-export` and the callbacks need to know about a task is asked of
the task module (and its data module, `data/base.py`), never decided from a class name elsewhere:

- `decode_predictions(examples, features, outputs, **settings)`: network outputs -> one JSON-ready dict per input
  (`predict_records` runs the encode -> batch -> forward -> decode loop; a generating task overrides it);
- `pipeline_task`: the `transformers.pipeline` task its Hugging Face export serves (None: none);
- `graph_outputs`: the output names of its exported graph, taken from the network's output by name (`GraphModule`);
- `graph_axes`: the names of the graph's input axes (`batch, sequence`; multiple choice adds `choices`);
- `export_info()`: what an exported graph needs beside it (label names, ...);
- `predicts_from_graph`: whether predictions need only the forward outputs (an exported graph can serve them).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import lightning as L
import torch
from torch.optim import Optimizer
from torchmetrics import Metric

from nlp_template.metrics.mean import ExactMean
from nlp_template.models import exact_step
from nlp_template.models.backbones import build_model, model_from_config
from nlp_template.models.graph import GraphModule
from nlp_template.models.optim import clip_gradients, parameter_groups
from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)
STAGES = ("val", "test")


class TaskModule(L.LightningModule):
    """Base class of the task modules; subclasses set `self.network` and call `self.setup_network(...)`.

    Args:
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
            The pretrained-model configs set 1.0, as the Hugging Face Trainer does (docs/results.md, "Fine-tuning
            defaults": +5 entity F1 on CoNLL-2003 with MiniLM).
    """

    pipeline_task: ClassVar[str | None] = None  # `transformers.pipeline` task of the Hugging Face export
    graph_outputs: ClassVar[tuple[str, ...]] = ("logits",)  # network output fields an exported graph returns
    export_format: ClassVar[str] = "onnx"  # the export the run summary suggests (`hf` where no graph holds the task)
    graph_axes: ClassVar[tuple[str, ...]] = ("batch", "sequence")  # the input axes of an exported graph, all dynamic
    peft_trains_heads: ClassVar[bool] = True  # with model.peft, train the new head in full (language models: none)
    # `predict_records` needs only the network's forward outputs (False: it generates, with the network's `generate`),
    # so a served onnx/torchscript export can predict (`inference/exported.py`).
    predicts_from_graph: ClassVar[bool] = True

    def __init__(
        self, optimizer: Callable[..., Optimizer] | None = None, scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.gradient_clip_val = gradient_clip_val
        object.__setattr__(self, "_compiled", None)
        # Sums of loss x count and of counts per evaluation stage (not saved in checkpoints: metric states are not
        # persistent), all-reduced across ranks when computed.
        self.eval_losses = torch.nn.ModuleDict({stage: ExactMean() for stage in STAGES})

    def hf_network(self, auto_class: Any, task_settings: dict[str, Any]) -> torch.nn.Module:
        """Build the Hugging Face network from the hyperparameters (`backbone`, `pretrained`, `config`).

        A module restored from a checkpoint has `backbone_config` (the network's full config) in its
        hyperparameters: the same architecture is rebuilt offline and the weights come from the state dict.
        """
        saved = self.hparams.get("backbone_config")
        if saved:
            return model_from_config(auto_class, saved)
        settings = {key: value for key, value in task_settings.items() if value is not None}
        if "id2label" in settings:  # the inverse map, which pipelines and exports read
            settings["label2id"] = {label: index for index, label in settings["id2label"].items()}
        hparams = self.hparams
        network = build_model(auto_class, hparams.backbone, hparams.pretrained, hparams.config, settings)
        self.hparams["backbone_config"] = network.config.to_dict()
        return network

    def setup_network(
        self, gradient_checkpointing: bool = False, compile: bool = False, peft: str | None = None,
        peft_settings: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Optional gradient checkpointing, parameter-efficient adapters (`models/adapters.py`) and `torch.compile`.

        The compiled wrapper is kept out of the module tree, so checkpoints have no `_orig_mod.` prefixes and load
        with or without compile; dynamic shapes keep dynamic padding from recompiling for every new length.
        """
        if gradient_checkpointing:
            # transformers 5 renamed it; the old name still works there but warns.
            names = ("activation_checkpointing_enable", "gradient_checkpointing_enable")
            name = next((name for name in names if hasattr(self.network, name)), None)
            if name is None:
                raise UserInputError(f"{type(self.network).__name__} does not support model.gradient_checkpointing")
            getattr(self.network, name)()
        if peft:
            from nlp_template.models.adapters import apply_peft

            if gradient_checkpointing:  # frozen embeddings: recomputed blocks still need an input that wants grads
                self.network.enable_input_require_grads()
            self.network = apply_peft(self.network, peft, peft_settings, self.peft_trains_heads)
        object.__setattr__(self, "_compiled", torch.compile(self.network, dynamic=True) if compile else None)

    def configure_model(self) -> None:
        """Under `trainer=fsdp2` (Lightning's ModelParallelStrategy): shard each block, then the rest, with FSDP2.

        A block is an element of any `nn.ModuleList` of the network (the transformer layers of every Hugging Face
        model); other strategies call this too, and nothing happens.
        """
        mesh = getattr(self, "device_mesh", None) if self._trainer is not None else None
        if mesh is None or "data_parallel" not in (mesh.mesh_dim_names or ()):
            return
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if isinstance(self.network, FSDPModule):  # Lightning calls this again for validate/test after fit
            return
        for module in list(self.network.modules()):
            if isinstance(module, torch.nn.ModuleList):
                for block in module:
                    fully_shard(block, mesh=mesh["data_parallel"])
        fully_shard(self.network, mesh=mesh["data_parallel"])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A trainable-only checkpoint (`checkpoint.trainable_only=true`) gets its frozen weights from the backbone."""
        from nlp_template.models.adapters import TRAINABLE_ONLY_KEY, fill_frozen_weights

        if TRAINABLE_ONLY_KEY in checkpoint:
            fill_frozen_weights(self, checkpoint["state_dict"], checkpoint[TRAINABLE_ONLY_KEY]["backbone"])

    def merge_adapters(self) -> None:
        """Fold peft adapters into the weights: `self.network` becomes the plain model (exports; no-op without)."""
        from nlp_template.models.adapters import is_peft

        if is_peft(self.network):
            self.network = self.network.merge_and_unload()

    def setup(self, stage: str) -> None:
        """Metric sums in float64 where the device has it (MPS has not: float32 there)."""
        if self._trainer is not None and self.trainer.strategy.root_device.type == "mps":
            for metric in self.modules():
                if isinstance(metric, Metric) and metrics_dtype(metric) == torch.float64:
                    metric.set_dtype(torch.float32)

    def forward(self, **batch: torch.Tensor) -> Any:
        """The network's output (with the loss when `labels` is in the batch).

        Only the batch entries the network's `forward` names are passed: a network that reads no `token_type_ids`
        need not declare them to train on data whose tokenizer makes them.
        """
        return (self.network if self._compiled is None else self._compiled)(**network_inputs(self.network, batch))

    def loss_count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """How many terms the network's loss on `batch` is a mean of.

        Its examples by default (sentence tasks, QA windows, multiple-choice questions); token tasks and language
        models count their labelled tokens.
        """
        return torch.tensor(batch["input_ids"].shape[0], device=batch["input_ids"].device)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The network's loss on one batch, for a gradient that is exact over the optimizer step (see below).

        A NaN/inf loss is stopped or skipped by `callbacks/nonfinite_loss.py`. `train/loss` is the batch's mean.
        """
        loss = self(**batch).loss
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return exact_step.scaled_loss(self, loss, self.loss_count(batch))

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Divide the summed gradients by the step's loss terms, counted over its micro-batches and ranks."""
        exact_step.normalize_gradients(self, optimizer)

    def configure_gradient_clipping(
        self, optimizer: Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        """Clip at `trainer.gradient_clip_val` when it is set, else at the model config's `gradient_clip_val`.

        Lightning calls this after `on_before_optimizer_step`, so the norm is that of the exact (normalised) gradient.
        """
        if gradient_clip_val is None:
            gradient_clip_val = self.gradient_clip_val
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)  # also fused optimizers in AMP

    def on_fit_start(self) -> None:
        """DeepSpeed clips inside its engine, from the Trainer's setting only: refuse a model-config clip it drops."""
        deepspeed = "deepspeed" in type(self.trainer.strategy).__name__.lower()
        if deepspeed and self.gradient_clip_val and self.trainer.gradient_clip_val is None:
            raise UserInputError(
                f"DeepSpeed clips gradients inside its engine and ignores the model config's gradient_clip_val;"
                f" set trainer.gradient_clip_val={self.gradient_clip_val} (or model.gradient_clip_val=null)"
            )

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> Any:
        """Loss and metric updates of one `val` or `test` batch (each task implements it)."""
        raise NotImplementedError

    def log_loss(self, stage: str, loss: torch.Tensor | None, count: torch.Tensor | int) -> None:
        """Accumulate a batch's mean `loss` over its `count` loss terms; `{stage}/loss` is the split's exact mean.

        `count` is what the network's loss averages over: examples for sentence tasks, labelled tokens for token
        tasks and language models, windows for QA. Logged as a metric object, so Lightning computes it once per
        epoch from the summed states of every rank. An exported graph in the network's place outputs no loss
        (`inference/exported.py`): then there is no `{stage}/loss`, and the other metrics are still computed.
        """
        if loss is None:
            return
        metric = self.eval_losses[stage]
        metric.update(loss, count)
        self.log(f"{stage}/loss", metric, prog_bar=stage == "val", on_step=False, on_epoch=True)

    def log_epoch(self, stage: str) -> None:
        """Metrics that need the whole split (entity F1, token-weighted loss); none by default."""

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> Any:
        """`evaluate` on a validation batch."""
        return self.evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> Any:
        """`evaluate` on a test batch (its return value reaches callbacks, e.g. `ClassificationReport`)."""
        return self.evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        """Split-level validation metrics."""
        self.log_epoch("val")

    def on_test_epoch_end(self) -> None:
        """Split-level test metrics."""
        self.log_epoch("test")

    def configure_optimizers(self) -> Any:
        """The configured optimizer over decay/no-decay groups, and the scheduler stepped every optimizer step."""
        if self.optimizer_factory is None:
            raise UserInputError("no optimizer configured: set model.optimizer (see conf/model/text_classifier.yaml)")
        weight_decay = getattr(self.optimizer_factory, "keywords", {}).get("weight_decay", 0.0)
        optimizer = self.optimizer_factory(parameter_groups(self.trainer.model, weight_decay))
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------------------- inference contract
    @torch.no_grad()
    def predict_records(
        self, records: list[dict], datamodule: Any, batch_size: int = 64, **settings: Any
    ) -> Iterator[dict]:
        """Each record with its prediction added, in order.

        The data module encodes a chunk of records exactly as in training, the network runs on the padded batch and
        `decode_predictions` turns its outputs into one result per record.
        """
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            examples, features = datamodule.encode_records(chunk)
            batch = {key: value.to(self.device) for key, value in datamodule.collate_inputs(features).items()}
            outputs = self.network(**network_inputs(self.network, batch))
            results = self.decode_predictions(examples, features, outputs, **settings)
            yield from ({**record, **result} for record, result in zip(chunk, results, strict=True))

    def decode_predictions(self, examples: list[dict], features: list[dict], outputs: Any, **settings: Any) -> list:
        """Network outputs for `features` (encoded from `examples`) -> one result dict per example.

        Only the task's own fields (label, entities, answer, ...): `predict_records` adds the record's fields.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement decode_predictions: it cannot predict")

    def graph_module(self, input_names: list[str]) -> torch.nn.Module:
        """The network as an exportable graph: `input_names` in, `graph_outputs` out."""
        return GraphModule(self.network, input_names, self.graph_outputs, self.graph_axes)

    def export_info(self) -> dict[str, Any]:
        """What a program running an exported graph needs beside it (written to `export_info.json`)."""
        id2label = self.hparams.get("id2label")
        return {"id2label": dict(id2label)} if id2label else {}


def metrics_dtype(metric: Metric | Any) -> torch.dtype:
    """The dtype of a torchmetrics metric's (or collection's) floating-point states (float32 when it has none)."""
    metrics = metric.values() if hasattr(metric, "values") else [metric]
    for item in metrics:
        for name in item._defaults:
            state = getattr(item, name)
            states = state if isinstance(state, list) else [state]
            for value in states:
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    return value.dtype
    return torch.float32


def network_inputs(network: torch.nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
    """The entries of `batch` that `network.forward` takes (all of them when it takes `**kwargs`).

    A peft model forwards `**kwargs` to the network it wraps: that network's `forward` decides.
    """
    if hasattr(network, "get_base_model"):
        network = network.get_base_model()
    names = _forward_parameters(type(network))
    return batch if names is None else {key: value for key, value in batch.items() if key in names}


@functools.cache
def _forward_parameters(network_class: type) -> frozenset[str] | None:
    """The argument names of a network class's `forward`, None when it takes `**kwargs`.

    Once per class: `forward` runs every training step, and `inspect.signature` is not free.
    """
    parameters = inspect.signature(network_class.forward).parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return frozenset(parameter.name for parameter in parameters)


def labelled_tokens(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The tokens with a label (not -100): what a token task's or masked/seq2seq LM's loss averages over."""
    return (batch["labels"] != -100).sum()


def truncated_flag(feature: dict) -> dict:
    """`{"truncated": True}` for a feature the encoder had to cut, else nothing (results stay small)."""
    return {"truncated": True} if feature.get("truncated") else {}


def label_maps(id2label: dict | None, owner: str) -> dict[int, str]:
    """`id2label` with int keys and str values (YAML and checkpoints may give either), or a clear error if absent."""
    if not id2label:
        raise UserInputError(f"{owner} needs id2label (the data module provides it in train.py)")
    return {int(index): str(label) for index, label in id2label.items()}
