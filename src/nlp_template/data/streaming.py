"""`StreamingLMDataModule`: causal language modelling on corpora streamed from token shards instead of an Arrow cache.

For corpora larger than the machine's memory or disk (continued pretraining): the text files are tokenized once into
litdata shards (`data/stream_shards.py`, in the cache by default, or any folder), and training streams fixed blocks
of `block_size` tokens from them with litdata's `StreamingDataset` + `StreamingDataLoader`, which also stream from
object stores (`data.stream_dir=s3://bucket/corpus`, chunks cached locally as they are read). Nothing needs every
length up front: blocks are cut on the fly from the token stream (`TokensLoader`), so every block is full and
batches need no padding.

- DDP and multi-node: litdata deals chunks to ranks itself (it reads the process group, so the datasets are built in
  the dataloader hooks, after Lightning started it); every rank gets the same number of training batches.
- Exact mid-epoch resume: litdata's loader state goes into every checkpoint through this module's `state_dict`
  (Lightning's Trainer does not save it, litdata issue #775), taken at the last batch whose step ran (Lightning
  fetches one batch ahead, so the loader's own count is one batch too far).
- Differences from the Arrow path (`LanguageModelingDataModule`): no validation carve (give validation files), a
  pretrained tokenizer (training one would read the whole corpus), and each chunk's last partial block is dropped
  (about block_size/2 tokens per chunk of `chunk_tokens`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from filelock import FileLock
from transformers import PreTrainedTokenizerBase

from nlp_template.data.cache import cache_key
from nlp_template.data.language_modeling import LanguageModelingDataModule, document_ids
from nlp_template.data.loaders import ignore_ctrl_c
from nlp_template.data.stream_shards import (
    STREAM_VERSION,
    StreamFiles,
    check_meta,
    default_key,
    files_signature,
    is_remote,
    read_meta,
    write_stream,
)
from nlp_template.data.tokenizer import tokenizer_fingerprint
from nlp_template.utils.errors import UserInputError

try:  # optional: `pip install litdata` (see docs/scaling.md)
    from litdata import StreamingDataLoader as _StreamingDataLoader
except ImportError:  # pragma: no cover - the error is raised when the data module is built
    _StreamingDataLoader = object

log = logging.getLogger(__name__)


class StreamingLMDataModule(LanguageModelingDataModule):
    """Language modelling data streamed from litdata token shards.

    Args:
        source: a `StreamFiles` (train/validation/test files, globs or lists); `train=None` reads an existing stream.
        text_column: column with the text (`.txt` files: each line, its line break kept).
        block_size: tokens per training example.
        eos_between_documents: put the end-of-text token after every row (separate documents).
        stream_dir: where the stream is: None writes it in the cache (keyed by the files and token settings); a folder
            is written once and then read; a litdata URL (s3://, gs://, azure://, hf://, local:<dir>) is read.
        chunk_tokens: tokens per shard file (litdata chunk); each chunk's last partial block is dropped.
        writers: processes that tokenize files when a stream is written (None: one per CPU, at most one per file).
        **kwargs: `tokenizer` (required), `batch_size`, `eval_batch_size`, `num_workers`, `seed`, `cache_dir`, ...
    """

    def __init__(
        self, source: StreamFiles, text_column: str = "text", block_size: int = 128,
        eos_between_documents: bool = True, stream_dir: str | None = None, chunk_tokens: int = 1 << 22,
        writers: int | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        if _StreamingDataLoader is object:
            raise UserInputError("streaming needs litdata: pip install litdata (docs/scaling.md, Streaming corpora)")
        super().__init__(source, text_column, block_size, eos_between_documents, **kwargs)
        if not self.tokenizer_name:
            raise UserInputError(
                "streaming needs a pretrained tokenizer: set data.tokenizer (a Hub id or a directory; training one"
                " would read the whole corpus)"
            )
        if self.batching != "random" or self.max_tokens:
            raise UserInputError(
                f"data.batching={self.batching} does nothing for streamed blocks (every block has block_size tokens);"
                " leave data.batching=random and data.max_tokens=null"
            )
        if self.max_train_examples:
            raise UserInputError("data.max_train_examples does not apply to a stream; give fewer files (or"
                                 " trainer.limit_train_batches)")  # fmt: skip
        if chunk_tokens < block_size:
            raise UserInputError(f"data.chunk_tokens={chunk_tokens} must be at least data.block_size={block_size}")
        self.stream_dir = stream_dir
        self.chunk_tokens = chunk_tokens
        self.writers = writers
        self.location: str | None = None
        self.splits: dict[str, Any] = {}
        self._loaders: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------------ task hooks
    stream_layout: ClassVar[str] = "token-ids"  # what a stream's values are (recorded and checked on reuse)

    def stream_encoder(self) -> Callable[[list[str]], list[list[int]]]:
        """Texts -> the values a stream holds per row (pickled into litdata's writer processes)."""
        return _Encode(self.tokenizer, self._separator(self.tokenizer))

    def stream_block_tokens(self) -> int:
        """Stream values per example: a whole block (a task that adds tokens around it takes fewer)."""
        return self.block_size

    def stream_collator(self, train: bool) -> Callable[[list[torch.Tensor]], dict[str, torch.Tensor]]:
        """Stream blocks -> a training or evaluation batch."""
        return StreamCollator()

    # ------------------------------------------------------------------------------------------------ the stream
    def prepare_data(self) -> None:
        """Load the tokenizer; find the stream (checked against this run's settings) or write it."""
        Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(self.cache_dir) / ".prepare.lock")):  # one writer per machine, the others wait
            if self.location is None:
                self.tokenizer = self.load_tokenizer()
                self.location = self._stream()
                self._save_tokenizer()

    def setup(self, stage: str | None = None) -> None:
        """The stream's splits (the litdata datasets are built by the loaders, after DDP has started)."""
        self.prepare_data()

    def _settings(self) -> dict[str, Any]:
        """What decides the token ids (recorded in stream.json and checked when a stream is reused)."""
        separator = self._separator(self.tokenizer)
        return {"version": STREAM_VERSION, "layout": self.stream_layout, "tokenizer":
                tokenizer_fingerprint(self.tokenizer), "text_column": self.text_column,
                "separator": separator}  # fmt: skip

    def _stream(self) -> str:
        """The stream's location: checked when it exists, written from the source files when it does not."""
        settings = self._settings()
        files = self.source.files() if self.source.train else None
        location = self.stream_dir
        if location is None:
            if files is None:
                raise UserInputError("set data.source.train (files to stream) or data.stream_dir (a stream to read)")
            location = str(Path(self.cache_dir) / "streams" / default_key(files, {**settings, "chunk_tokens":
                                                                                   self.chunk_tokens}))  # fmt: skip
        signature = files_signature(files) if files else None
        found = read_meta(location, self._remote_cache(location))
        if found is None:
            if is_remote(location):
                raise UserInputError(f"no stream at {location} (no stream.json); write it to a local folder first")
            if files is None:
                raise UserInputError(f"no stream at {location}: set data.source.train (and validation) to write one")
            if Path(location).exists() and any(Path(location).iterdir()):
                raise UserInputError(f"data.stream_dir={location} is not empty and holds no stream.json; point it at"
                                     " a new or empty folder (nothing there is overwritten)")  # fmt: skip
            if "validation" not in files:
                raise UserInputError("a stream needs validation files (no carve from a stream): set"
                                     " data.source.validation")  # fmt: skip
            log.info("Writing token shards of %s to %s", ", ".join(files), location)
            write_stream(files, self.stream_encoder(), self.text_column, Path(location),
                         {**settings, "files": signature}, self.chunk_tokens, self.writers)  # fmt: skip
            found = read_meta(location, self._remote_cache(location))
        else:
            check_meta(location, found, settings, signature)
        self.splits = {split: f"{location.rstrip('/')}/{split}" for split in found["tokens"]}
        self.stats = {split: {"tokens": tokens} for split, tokens in found["tokens"].items()}
        log.info("Streaming %s from %s", self.stats, location)
        return location

    def _remote_cache(self, location: str) -> Path:
        """Where litdata keeps the chunks it downloads from a remote stream (one folder per URL)."""
        return Path(self.cache_dir) / "stream-chunks" / cache_key(location)

    # ------------------------------------------------------------------------------------------------ loaders
    def _dataset(self, split: str, train: bool) -> Any:
        from litdata import StreamingDataset, TokensLoader

        if split not in self.splits:
            raise UserInputError(f"the stream has no {split} split; give data.source.{split} files (a new stream)")
        url = self.splits[split]
        cache = str(self._remote_cache(url)) if is_remote(url) else None
        return StreamingDataset(url, item_loader=TokensLoader(block_size=self.stream_block_tokens()), shuffle=train,
                                seed=self.seed, drop_last=train, cache_dir=cache)  # fmt: skip

    def _stream_loader(self, split: str, train: bool) -> Any:
        batch_size = self.batch_size if train else self.eval_batch_size
        loader = ResumableStreamingLoader(self._dataset(split, train), batch_size=batch_size,
                                          num_workers=self.num_workers, collate_fn=self.stream_collator(train),
                                          drop_last=train,
                                          worker_init_fn=ignore_ctrl_c if self.num_workers else None)  # fmt: skip
        return loader

    def train_dataloader(self) -> Any:
        """Shuffled full blocks, dealt across ranks by litdata; resumed where a checkpoint left off."""
        loader = self._stream_loader("train", train=True)
        if self._resume and self._resume.get("stream"):
            loader.load_state_dict(self._resume["stream"])
            self._resume = None
        elif self.trainer is not None:
            loader.current_epoch = self.trainer.current_epoch  # litdata counts epochs from 1: epoch N reshuffles as N+1
        self._loaders["train"] = loader
        return loader

    def val_dataloader(self) -> Any:
        """Validation blocks in stream order."""
        return self._stream_loader("validation", train=False)

    def test_dataloader(self) -> Any:
        """Test blocks in stream order."""
        return self._stream_loader("test", train=False)

    def state_dict(self) -> dict:
        """The training loader's litdata state after the last batch whose step ran (mid-epoch resume)."""
        loader = self._loaders.get("train")
        if loader is None or self.trainer is None:
            return {}
        completed = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        state = loader.states.get(completed)
        return {"stream": state} if state is not None and completed < len(loader) else {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume the training stream where the checkpoint left it (applied when the loader is built)."""
        self._resume = state_dict

    def held_out_features(self, size: int) -> list[dict]:
        """The first `size` blocks of the test stream (validation where there is none), as token ids."""
        dataset = self._dataset("test" if "test" in self.splits else "validation", train=False)
        return [{"input_ids": self.block_ids(dataset[index])} for index in range(min(size, len(dataset)))]

    def block_ids(self, values: torch.Tensor) -> list[int]:
        """The token ids of one streamed block (a stream holds ids as they are)."""
        return values.tolist()

    def generation_prompts(self, prompts: list[str] | None, count: int, prompt_tokens: int) -> list[list[int]]:
        """The given prompts, else the first `prompt_tokens` tokens of the first `count` validation blocks."""
        if prompts:
            return super().generation_prompts(prompts, count, prompt_tokens)
        dataset = self._dataset("validation", train=False)
        return [self.block_ids(dataset[index])[:prompt_tokens] for index in range(min(count, len(dataset)))]


class _Encode:
    """Texts -> token id lists, as `LanguageModelingDataModule.encode` makes them (pickled into litdata workers)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, separator: list[int]) -> None:
        self.tokenizer, self.separator = tokenizer, separator

    def __call__(self, texts: list[str]) -> list[list[int]]:  # noqa: D102
        return document_ids(self.tokenizer, texts, self.separator)


class StreamCollator:
    """Full blocks -> `input_ids`, `labels` (the same ids: the model shifts them) and an all-ones attention mask."""

    def __call__(self, blocks: list[torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: D102
        ids = torch.stack(blocks).long()
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


class ResumableStreamingLoader(_StreamingDataLoader):
    """A litdata `StreamingDataLoader` that keeps its state after each of the last few batches it yielded.

    `states[n]` is the state after the epoch's first n batches: a checkpoint saved after n steps resumes from there,
    however far ahead the trainer has fetched. Lightning stops an epoch after `len(loader)` batches without
    exhausting the iterator, which would leave litdata's `restore` flag set after a resumed epoch (the next epoch
    would then be empty): it is cleared here at the epoch's last batch.
    """

    states: dict[int, dict] = {}  # noqa: RUF012 -- replaced per epoch
    _resumed_at = 0

    def load_state_dict(self, obj: dict) -> None:  # noqa: D102
        super().load_state_dict(obj)
        self._resumed_at = obj["num_samples_yielded"] // self.batch_size

    def __iter__(self):  # noqa: ANN204, D105
        self.states, start, self._resumed_at = {}, self._resumed_at, 0
        for count, batch in enumerate(super().__iter__(), start=start + 1):
            self.states[count] = self.state_dict()
            self.states.pop(count - 4, None)  # Lightning fetches one batch ahead; keep a small margin
            if count >= len(self):
                self.restore = False
            yield batch
