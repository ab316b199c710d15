"""`QuestionAnsweringDataModule`: extractive question answering (SQuAD v1.1/v2.0 layout) -> windows of tokens.

Rows hold a question, a context and answers `{"text": [...], "answer_start": [...]}` (the Hugging Face `squad`
layout: SQuAD JSON through `SquadSource`, JSONL/Parquet through `FileSource`, Hub data sets, the embedded
`QASamples`). Each example becomes one or more windows (`data/qa_windows.py`): a long context is cut into windows of
`max_length` tokens overlapping by `doc_stride`. Training targets the answer's first and last token, or the CLS token
where the answer is not in the window. Validation and test windows keep their character offsets and their example's
row, so the task module can turn logits back into answer strings and score them against every gold answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from nlp_template.data.base import TokenizedDataModule
from nlp_template.data.qa_windows import check_stride, encode_windows
from nlp_template.data.squad import check_qa_examples

ROW = "example_row"  # position of a window's example in its split
POSITIONS = ("start_positions", "end_positions")


class QuestionAnsweringDataModule(TokenizedDataModule):
    """Question + context windows with answer positions.

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str` (`SquadSource`, `FileSource`,
            `HubSource`, `QASamples`).
        id_column: question ids (optional: rows are numbered when absent); named in error messages.
        question_column: column with the question.
        context_column: column with the context.
        answers_column: column with `{"text": [...], "answer_start": [...]}` per question.
        doc_stride: context tokens shared by consecutive windows of a long context.
        version_2_with_negative: questions may have no answer (SQuAD v2.0); off, such data is refused.
        **kwargs: tokenizer, batching, caching and split settings of `TokenizedDataModule` (`data/base.py`);
            `max_length` is the window length.
    """

    def __init__(
        self,
        source: Any,
        id_column: str = "id",
        question_column: str = "question",
        context_column: str = "context",
        answers_column: str = "answers",
        doc_stride: int = 128,
        version_2_with_negative: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(source, **{"max_length": 384, **kwargs})
        check_stride(self.max_length, doc_stride)
        self.id_column, self.question_column = id_column, question_column
        self.context_column, self.answers_column = context_column, answers_column
        self.doc_stride = doc_stride
        self.version_2_with_negative = version_2_with_negative
        self.examples: DatasetDict | None = None

    def columns(self) -> dict[str, str]:
        """Question, context and answers (the id column is optional)."""
        return {"question_column": self.question_column, "context_column": self.context_column,
                "answers_column": self.answers_column}  # fmt: skip

    def prediction_columns(self) -> list[str]:
        """A question and its context."""
        return [self.question_column, self.context_column]

    def check_split(self, split: str, data: Dataset) -> None:
        """Answers at their offsets, no empty question or context, no unanswerable question in v1 mode."""
        roles = {"id": self.id_column, "question": self.question_column, "context": self.context_column,
                 "answers": self.answers_column}  # fmt: skip
        check_qa_examples(split, data, self.version_2_with_negative, roles)

    def load_splits(self) -> tuple[DatasetDict, str]:
        """The checked splits, kept as `examples`: evaluation scores answers against them."""
        raw, key = super().load_splits()
        self.examples = raw
        return raw, key

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """Questions and contexts of the training split."""
        return (text for column in (self.question_column, self.context_column) for text in train[column])

    def cache_settings(self) -> list[Any]:
        """Window overlap and whether unanswerable questions are allowed."""
        return [self.doc_stride, self.version_2_with_negative]

    def tokenize(self, raw: DatasetDict) -> tuple[DatasetDict, dict]:
        """Windows of every split; evaluation windows know their example's row (`example_row`) and their index."""
        numbered = DatasetDict({split: data.add_column(ROW, list(range(data.num_rows))) for split, data in raw.items()})
        splits, stats = self.encode_splits(numbered, self.encode)
        for split, data in list(splits.items()):
            # `encode_splits` counts rows, which are windows here.
            stats[split].update(examples=raw[split].num_rows, windows=data.num_rows)
            if split != "train":  # the task module looks up an evaluated window's offsets and example by its index
                splits[split] = data.add_column("feature_index", list(range(data.num_rows)))
        return splits, stats

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Windows of the batch's examples (`data/qa_windows.py`); training keeps only what the loss needs."""
        answers = batch.get(self.answers_column) if split != "predict" else None
        windows = encode_windows(self.tokenizer, batch[self.question_column], batch[self.context_column], answers,
                                 self.max_length, self.doc_stride)  # fmt: skip
        rows = batch.get(ROW) or list(range(len(batch[self.question_column])))
        windows[ROW] = [rows[index] for index in windows["example_index"]]
        if split == "predict":  # decoding needs the context of each window (`example_index`: within this batch)
            windows["context"] = [batch[self.context_column][index] for index in windows["example_index"]]
        else:
            del windows["example_index"]  # within one `map` batch only; `example_row` is the split's row
        if split == "train":  # offsets are for turning logits into answers: evaluation and prediction only
            del windows["offset_mapping"]
        windows["truncated"] = [False] * len(windows["input_ids"])  # long contexts are windowed, never cut
        return windows

    def references(self, split: str) -> tuple[list[str], list[str], list[list[str]]]:
        """Ids, contexts and gold answer texts of a split's examples, in row order (for exact match and F1)."""
        data = self.examples[split]
        ids = data[self.id_column] if self.id_column in data.column_names else list(map(str, range(data.num_rows)))
        answers = [list(answer["text"]) for answer in data[self.answers_column]]
        return [str(i) for i in ids], list(data[self.context_column]), answers

    def model_kwargs(self) -> dict[str, Any]:
        """The shared facts plus whether "no answer" is possible."""
        return {**super().model_kwargs(), "version_2_with_negative": self.version_2_with_negative}

    def inference_settings(self) -> dict[str, Any]:
        """Window length and overlap: a service must window contexts the same way."""
        return {"max_length": self.max_length, "doc_stride": self.doc_stride}

    def collator(self) -> QuestionAnsweringCollator:
        """Pad the windows; answer positions and window indices as tensors."""
        return QuestionAnsweringCollator(self.tokenizer, self.pad_multiple())


class QuestionAnsweringCollator:
    """Pads model inputs with the tokenizer; passes `start_positions`, `end_positions` and `feature_index` through.

    Offsets and example rows stay in the data set: the task module looks them up by `feature_index`.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        """The padded batch."""
        names = set(self.tokenizer.model_input_names)
        inputs = [{key: value for key, value in feature.items() if key in names} for feature in features]
        batch = dict(self.tokenizer.pad(inputs, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"))
        for key in (*POSITIONS, "feature_index"):
            if key in features[0]:
                batch[key] = torch.tensor([feature[key] for feature in features], dtype=torch.long)
        return batch
