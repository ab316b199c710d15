"""`StreamingMLMDataModule`: masked language modelling (continued pretraining of an encoder) on a streamed corpus.

The streaming path of `data/streaming.py` with the masking of `data/masked_lm.py`: blocks of `block_size - 2` tokens
streamed from litdata shards get `[CLS]`/`[SEP]` around them and are masked in the collator, token- or
whole-word-level. Whole-word masking needs to know which tokens start a word, which a token shard cannot hold beside
the ids (litdata's `TokensLoader` streams one 1-D array), so a stream of this layout stores each token as
`id * 4 + mark + 1` (mark: word start 1, continuation 0, special -1; ids up to 2^29) and the collator splits them.

Validation and test blocks are masked with a generator seeded from `data.seed` and the block's own tokens: the same
masks in every epoch, for any batch size and any number of ranks, as the Arrow path's masks drawn once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from transformers import PreTrainedTokenizerBase

from nlp_template.data.masked_lm import MaskedLMDataModule, Masker, marked_ids
from nlp_template.data.masking import SPECIAL
from nlp_template.data.stream_shards import StreamFiles
from nlp_template.data.streaming import StreamingLMDataModule
from nlp_template.utils.errors import UserInputError

MARK_BITS = 2  # a stream value is id << 2 | (mark + 1)


class StreamingMLMDataModule(StreamingLMDataModule, MaskedLMDataModule):
    """Masked-LM data streamed from litdata shards.

    Takes the arguments of `StreamingLMDataModule` (`stream_dir`, `chunk_tokens`, `writers`, ...) and the masking
    settings of `MaskedLMDataModule` (`mlm_probability`, `whole_word_mask`, `mask_replace_prob`, ...).
    """

    stream_layout: ClassVar[str] = "token-ids-with-word-marks"

    def __init__(
        self, source: StreamFiles, text_column: str = "text", block_size: int = 128,
        eos_between_documents: bool = True, stream_dir: str | None = None, chunk_tokens: int = 1 << 22,
        writers: int | None = None, mlm_probability: float = 0.15, whole_word_mask: bool = False,
        mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1, **kwargs: Any,
    ) -> None:  # fmt: skip
        masking = {"mlm_probability": mlm_probability, "whole_word_mask": whole_word_mask,
                   "mask_replace_prob": mask_replace_prob, "random_replace_prob": random_replace_prob}  # fmt: skip
        # StreamingLMDataModule passes the masking settings on to MaskedLMDataModule (the next class in the MRO).
        super().__init__(source, text_column, block_size, eos_between_documents, stream_dir, chunk_tokens, writers,
                         **masking, **kwargs)  # fmt: skip

    def stream_encoder(self) -> Callable[[list[str]], list[list[int]]]:
        """Texts -> packed (id, word mark) values, the separator after each row."""
        if len(self.tokenizer) >= 1 << (31 - MARK_BITS):
            raise UserInputError(f"a vocabulary of {len(self.tokenizer)} tokens is too large for a masked-LM stream")
        return _EncodeWithMarks(self.tokenizer, self._separator(self.tokenizer))

    def stream_block_tokens(self) -> int:
        """`[CLS]` and `[SEP]` are added around each streamed block."""
        return self.block_size - 2

    def block_ids(self, values: torch.Tensor) -> list[int]:
        """`[CLS]` + the block's token ids (its word marks dropped) + `[SEP]`."""
        return [self.tokenizer.cls_token_id, *(values.long() >> MARK_BITS).tolist(), self.tokenizer.sep_token_id]

    def stream_collator(self, train: bool) -> StreamMaskingCollator:
        """Blocks masked afresh (training) or with their fixed masks (evaluation)."""
        return StreamMaskingCollator(self.tokenizer, self.masker(), None if train else self.seed)


class _EncodeWithMarks:
    """Texts -> one list of packed values per row (pickled into litdata's writer processes)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, separator: list[int]) -> None:
        self.tokenizer, self.separator = tokenizer, separator

    def __call__(self, texts: list[str]) -> list[list[int]]:  # noqa: D102
        ids, marks = marked_ids(self.tokenizer, texts, self.separator)
        return [[(i << MARK_BITS) | (m + 1) for i, m in zip(row, row_marks, strict=True)]
                for row, row_marks in zip(ids, marks, strict=True)]  # fmt: skip


class StreamMaskingCollator:
    """Packed blocks -> `[CLS] block [SEP]` ids and marks -> masked `input_ids`, `labels`, `attention_mask`.

    `seed=None` masks afresh (training); a seed fixes each block's masks by its content (evaluation).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, masker: Masker, seed: int | None) -> None:
        self.cls, self.sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.masker, self.seed = masker, seed

    def __call__(self, blocks: list[torch.Tensor]) -> dict[str, Any]:  # noqa: D102
        values = torch.stack(blocks).long()
        rows = values.shape[0]
        ids = torch.cat([torch.full((rows, 1), self.cls), values >> MARK_BITS, torch.full((rows, 1), self.sep)], 1)
        special = torch.full((rows, 1), SPECIAL)
        marks = torch.cat([special, (values & ((1 << MARK_BITS) - 1)) - 1, special], 1)
        if self.seed is None:
            inputs, labels = self.masker.mask(ids, marks)
        else:
            masked = [self.masker.mask(ids[r : r + 1], marks[r : r + 1], self._generator(ids[r])) for r in range(rows)]
            inputs, labels = (torch.cat(parts) for parts in zip(*masked, strict=True))
        return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs), "labels": labels}

    def _generator(self, block: torch.Tensor) -> torch.Generator:
        digest = hashlib.sha256(block.numpy().tobytes()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:7], "little") ^ self.seed)
