"""Causal language modelling: packing, contiguous validation, tokenizers, collator, bad input, learning, samples."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import FAST, SHARED_DATA

from nlp_template.data.language_modeling import LanguageModelingCollator, LanguageModelingDataModule
from nlp_template.data.sources import FileSource
from nlp_template.data.tokenizer import train_bpe, train_char
from nlp_template.eval import evaluate
from nlp_template.models.causal_lm import CausalLM
from nlp_template.train import train
from nlp_template.utils.errors import UserInputError

TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog, {'again ' * (i % 4)}!\n" for i in range(300))
TINY_GPT = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 32}


def prepare(tmp_path, text: str = TEXT, **kwargs) -> LanguageModelingDataModule:
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    kwargs = {"tokenizer_type": "char", "block_size": 32, "cache_dir": str(tmp_path / "cache"), **kwargs}
    dm = LanguageModelingDataModule(FileSource(train=str(path)), **kwargs)
    dm.prepare_data()
    return dm


def decoded(dm: LanguageModelingDataModule, split: str) -> str:
    return "".join(dm.tokenizer.decode(block) for block in dm.splits[split]["input_ids"])


def test_packing_keeps_every_token_and_validation_is_the_contiguous_tail(tmp_path):
    dm = prepare(tmp_path, validation_fraction=0.1)
    # Nothing dropped, nothing reordered: train blocks then validation blocks spell the file, line breaks and all.
    assert decoded(dm, "train") + decoded(dm, "validation") == TEXT
    assert len(decoded(dm, "validation")) == pytest.approx(0.1 * len(TEXT), abs=1)
    lengths = dm.splits["train"]["length"]
    assert set(lengths[:-1]) == {32} and 2 <= lengths[-1] <= 32  # only the split's last block may be shorter


def test_bpe_and_char_tokenizers_round_trip():
    text = "Ünïcode — and  double  spaces,\nnew lines\tand tabs. "
    assert train_bpe([TEXT, text], vocab_size=300).decode(train_bpe([TEXT, text], 300)(text)["input_ids"]) == text
    char = train_char([text])
    assert char.decode(char(text)["input_ids"]) == text


def test_collator_masks_padding_but_keeps_end_of_text_labels():
    tokenizer = train_char(["abc"])
    tokenizer.pad_token = tokenizer.eos_token  # as GPT-2 tokenizers are used: padding with the end-of-text token
    eos = tokenizer.eos_token_id
    batch = LanguageModelingCollator(tokenizer)([{"input_ids": [5, 6, eos]}, {"input_ids": [5]}])
    assert batch["labels"].tolist() == [[5, 6, eos], [5, -100, -100]]


def test_empty_corpus(tmp_path):
    with pytest.raises(UserInputError, match="the training text is empty"):
        prepare(tmp_path, text="\n" * 3, tokenizer_type="bpe", vocab_size=300, eos_between_documents=False)


def test_block_size_larger_than_the_model_positions():
    with pytest.raises(UserInputError, match="data.block_size=64 is larger than the model's 32 position embeddings"):
        CausalLM(config=TINY_GPT, vocab_size=40, pad_token_id=0, block_size=64)


def test_validation_loss_is_token_weighted(tmp_path):
    # A short last block must not weigh as much as a full one: the split's loss is a mean over predicted tokens.
    model = CausalLM(config=TINY_GPT, vocab_size=40, pad_token_id=0, block_size=32).eval()
    long, short = torch.randint(3, 40, (1, 32)), torch.randint(3, 40, (1, 3))
    losses = []
    for ids in (long, short):
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
        with torch.no_grad():
            model.validation_step(batch, 0)
            losses.append((model(**batch).loss.item(), ids.shape[1] - 1))
    expected = sum(loss * count for loss, count in losses) / sum(count for _, count in losses)
    assert model.eval_losses["val"].compute().item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_language_model_learns_and_logs_samples(make_cfg):
    # Measured: test loss 1.74 nats/char here (2,000 sentences, 3 epochs, 31 s); the full experiment reaches 0.38.
    # Character frequencies alone give 2.89 (the unigram entropy of this text), uniform guessing ln(28 + 3) = 3.43.
    overrides = ["experiment=lm_tiny", *FAST, "data.source.num_train=2000", "trainer.max_epochs=3"]
    cfg = make_cfg(overrides)
    metrics = train(cfg)
    assert metrics["test/loss"] < 2.2
    assert metrics["test/ppl"] == pytest.approx(math.exp(metrics["test/loss"]), rel=1e-4)
    assert metrics["throughput/tflops_per_sec"] > 0  # FLOPs are counted for GPT-2 too (meta-device copy)
    text = (Path(cfg.paths.output_dir) / "samples.md").read_text()
    assert text.count("## step") == 3 and "greedy" in text and "sampled" in text  # one per validation, not more
    reproduced = evaluate(make_cfg([f"ckpt_path={metrics['best_model_path']}"], name="eval", run="eval"))
    assert reproduced["test/loss"] == pytest.approx(metrics["test/loss"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "tiny_shakespeare").is_dir(), reason="needs ../shared/data/tiny_shakespeare")
def test_shakespeare_char_short(make_cfg):
    # nanoGPT's recipe cut to 600 of its 2000 steps (the full run: 1.911, README). Measured: val loss 2.28 (27 s).
    # On this text a character-frequency model scores 3.31 nats/char and a bigram model 2.45: the threshold asks for
    # more context than the previous character.
    overrides = ["experiment=shakespeare_char", f"paths.data_dir={SHARED_DATA}", "trainer.max_steps=600",
                 "trainer.val_check_interval=600", "extras.print_config=false", "test=false"]  # fmt: skip
    metrics = train(make_cfg(overrides))
    assert metrics["val/loss"] < 2.4, metrics


def test_generation_stops_at_the_model_positions():
    from nlp_template.callbacks.generation import GenerationSamples

    tokenizer = train_char([TEXT])
    model = CausalLM(config=TINY_GPT, vocab_size=len(tokenizer), pad_token_id=0, block_size=32)
    prompt = tokenizer("the quick brown fox jumps", add_special_tokens=False)["input_ids"]
    sample = GenerationSamples(max_new_tokens=80).generate(model, tokenizer, prompt)  # 25 + 80 > 32 positions
    # At most the 7 positions left (special tokens the random model may emit are not printed); 80 would crash.
    assert len(sample["greedy"]) <= 32 - len(prompt) and sample["prompt"] == "the quick brown fox jumps"
