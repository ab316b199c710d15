"""Tokenizers: a pretrained one (Hub name or local directory) or one trained on the training split.

Three kinds can be trained: `wordpiece` (BERT-style, for classification and tagging), `bpe` (byte-level BPE as in
GPT-2, for language modelling: any text round-trips) and `char` (one token per character, as nanoGPT's
Shakespeare model).

Training a tokenizer is not deterministic across processes (the `tokenizers` trainer is multi-threaded), so a
trained tokenizer is cached under a key of the data and the settings: the first run trains and saves it, every later
run, DDP rank or evaluation loads the saved files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from nlp_template.utils.errors import UserInputError
from nlp_template.utils.hub import load_or_explain, resolve_name_or_path

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}

log = logging.getLogger(__name__)


def load_pretrained_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a fast tokenizer from a local directory or a Hub id, with a one-line error when it cannot be found."""
    path = resolve_name_or_path(name_or_path, "tokenizer", "data.tokenizer, which defaults to model.backbone")
    tokenizer = load_or_explain("tokenizer", path, AutoTokenizer.from_pretrained)
    if not tokenizer.is_fast:
        raise UserInputError(f"tokenizer '{name_or_path}' has no fast (Rust) version; this template needs one")
    return tokenizer


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer ([CLS] a [SEP] b [SEP]) on `texts`."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()))
    tokenizer.train_from_iterator(texts, trainer=trainer)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        **SPECIAL_TOKENS,
    )


# Special tokens of the tokenizers trained for language modelling.
LM_SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "eos_token": "<eos>"}


def train_bpe(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (GPT-2 style): every string round-trips, nothing is unknown."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(LM_SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _wrap_lm(tokenizer)


def train_char(texts: Iterable[str], lowercase: bool = False) -> PreTrainedTokenizerFast:
    """A character-level tokenizer over the characters of `texts` (whitespace and newlines included)."""
    characters: set[str] = set()
    for text in texts:
        characters.update(text.lower() if lowercase else text)
    vocab = {token: index for index, token in enumerate(LM_SPECIAL_TOKENS.values())}
    vocab.update({char: len(vocab) + index for index, char in enumerate(sorted(characters))})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=LM_SPECIAL_TOKENS["unk_token"]))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character
    tokenizer.decoder = decoders.Fuse()  # join characters back without separators
    return _wrap_lm(tokenizer)


def _wrap_lm(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    # No clean-up of spaces on decode: text must round-trip exactly (" ." stays " .").
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        **LM_SPECIAL_TOKENS,
    )


TRAINABLE = ("wordpiece", "bpe", "char")


def cached_trained_tokenizer(
    kind: str, texts: Iterable[str], data_key: str, vocab_size: int, lowercase: bool, cache_dir: str | os.PathLike
) -> PreTrainedTokenizerBase:
    """Load the tokenizer of this kind trained on this data with these settings, training it on first use."""
    if kind not in TRAINABLE:
        raise UserInputError(f"unknown data.tokenizer_type '{kind}'; use one of {list(TRAINABLE)}")
    settings = {"wordpiece": (vocab_size, lowercase), "bpe": (vocab_size,), "char": (lowercase,)}[kind]
    version = "wordpiece-v1" if kind == "wordpiece" else f"{kind}-v1"  # wordpiece keys predate the other kinds
    key = hashlib.sha256(f"{version}:{data_key}:{':'.join(map(str, settings))}".encode()).hexdigest()[:16]
    directory = Path(cache_dir) / "tokenizers" / key
    if not directory.is_dir():
        train = {"wordpiece": train_wordpiece, "bpe": train_bpe, "char": train_char}[kind]
        # Seconds on a large training split (~10 s on SST-2): say what is happening, then how long it took.
        log.info("Training a %s tokenizer on the training texts (cached for the next run: %s)", kind, directory)
        start = time.perf_counter()
        save_atomically(train(_reporting(texts, start), *settings), directory)
        log.info("Tokenizer trained in %.1f s", time.perf_counter() - start)
    return AutoTokenizer.from_pretrained(str(directory))


def _reporting(texts: Iterable[str], start: float, every: float = 5.0) -> Iterator[str]:
    """The texts, with a log line every `every` seconds saying how many were read.

    Progress that reaches logs and pipes alike: the `tokenizers` trainers draw their own bars only on a terminal.
    """
    count, last = 0, start
    for count, text in enumerate(texts, start=1):
        if time.perf_counter() - last >= every:
            last = time.perf_counter()
            log.info("Tokenizer training: %s texts read (%.0f s)", f"{count:,}", last - start)
        yield text
    log.info("Tokenizer training: all %s texts read in %.1f s; building the vocabulary", f"{count:,}",
             time.perf_counter() - start)  # fmt: skip


def save_atomically(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """Save into a temporary sibling and rename it, so a reader never sees half a tokenizer; first writer wins."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    tokenizer.save_pretrained(str(staging))
    try:
        staging.rename(directory)
    except OSError:  # another process saved it first
        shutil.rmtree(staging, ignore_errors=True)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides the token ids (vocabulary, normalizer, templates)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]
