"""A real pretrained model from a local directory: sentence-transformers/all-MiniLM-L6-v2 (optional test dependency)."""

from __future__ import annotations

import lightning as L
import torch

from nlp_template.data.samples import SentimentSamples
from nlp_template.data.text_classification import TextClassificationDataModule
from nlp_template.models.text_classifier import TextClassifier


class RecordLoss(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_finetune_minilm_from_local_directory(minilm, tmp_path):
    dm = TextClassificationDataModule(
        SentimentSamples(num_train=64, num_validation=16, num_test=16), tokenizer=str(minilm), batch_size=16,
        cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    assert dm.tokenizer.vocab_size == 30522  # MiniLM's own WordPiece vocabulary, not a trained one
    model = TextClassifier(
        backbone=str(minilm), pretrained=True, **dm.model_kwargs(),
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-4),
    )  # fmt: skip
    # The encoder's weights are MiniLM's, only the classification head is new.
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(str(minilm)).embeddings.word_embeddings.weight
    assert torch.equal(model.network.bert.embeddings.word_embeddings.weight, reference)
    assert model.network.training  # dropout on during fine-tuning

    recorder = RecordLoss()
    trainer = L.Trainer(
        max_epochs=10, overfit_batches=2, callbacks=[recorder], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    first, last = sum(recorder.losses[:2]) / 2, sum(recorder.losses[-2:]) / 2
    assert last < 0.5 * first, recorder.losses  # measured: mean of the first two 0.69, of the last two 0.11
