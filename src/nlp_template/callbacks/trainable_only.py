"""`TrainableOnlyCheckpoint`: checkpoints that keep only the weights that train (`checkpoint.trainable_only=true`).

With LoRA the frozen backbone is most of a checkpoint (MiniLM, r=8: 91 MB of weights, 0.07 M of them trained):
this keeps the adapters, the new head and the optimizer state, and records the backbone. Loading
(`TaskModule.on_load_checkpoint`: resume, `nlp-eval`, `nlp-predict`, `nlp-export`) takes the frozen weights from
that backbone again, offline, which is exact only because they never changed; so the setting is refused for a
network whose frozen weights are random (a model built from config) and for one that trains every weight.
"""

from __future__ import annotations

import lightning as L

from nlp_template.models.adapters import TRAINABLE_ONLY_KEY
from nlp_template.utils.errors import UserInputError


class TrainableOnlyCheckpoint(L.Callback):
    """Drop the frozen weights from every checkpoint's state dict when `enabled`.

    Args:
        enabled: `checkpoint.trainable_only` of conf/train.yaml.
    """

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse a run whose frozen weights could not be loaded again."""
        if not self.enabled:
            return
        hparams = pl_module.hparams
        if not (hparams.get("pretrained") and hparams.get("backbone")):
            raise UserInputError("checkpoint.trainable_only=true needs a pretrained model.backbone to reload the frozen"
                                 " weights from; this model is built from config with random weights")  # fmt: skip
        if all(parameter.requires_grad for parameter in pl_module.parameters()):
            raise UserInputError("checkpoint.trainable_only=true keeps the weights that train, and this run trains"
                                 " all of them; use it with model.peft=lora (or leave it false)")  # fmt: skip

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Keep the trainable parameters only; record where the others come from."""
        if not self.enabled:
            return
        trained = {name for name, parameter in pl_module.named_parameters() if parameter.requires_grad}
        checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items() if key in trained}
        checkpoint[TRAINABLE_ONLY_KEY] = {"backbone": pl_module.hparams.backbone}
