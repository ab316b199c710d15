"""`ChatDataModule`: chat conversations for supervised fine-tuning (SFT) of causal language models.

Rows hold `messages` (a list of `{role, content}`, roles `system`/`user`/`assistant`, any number of turns) or a
prompt and a response column (one user turn and its reply). A configured `system_prompt` is put first in every
conversation that has none. The conversation is rendered by the tokenizer's chat template, `data.chat_template`
(a Jinja string or a `.jinja` file), or the documented default (`chat_template.DEFAULT_CHAT_TEMPLATE`); the
template is stored in the run's tokenizer, so `nlp-predict` and the Hugging Face export render prompts the same way.

`labels` are the assistant's tokens only (its replies and their end-of-turn token); system, user and template tokens
are -100, so the loss and the exact-match score (`models/chat_lm.py`) are about the replies. With `packing=true`
training conversations are packed several to a block of `max_length` tokens with position ids that restart at each
conversation, given to the model without an attention mask, which transformers turns into attention that stays
inside each conversation (the model checks at start-up that its attention does; see `CausalLM`). Validation and test
are never packed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from nlp_template.data import chat_template
from nlp_template.data.base import TokenizedDataModule
from nlp_template.data.language_modeling import pad_with_eos
from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)
IGNORE = -100


class ChatDataModule(TokenizedDataModule):
    """Chat conversations (or prompt/response pairs) for supervised fine-tuning.

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str` (`FileSource` over JSONL,
            `HubSource`, `InstructionSamples`).
        messages_column: the column of conversations; None reads `prompt_column` and `response_column` instead.
        prompt_column: the user's message (with `messages_column: null`).
        response_column: the assistant's reply (with `messages_column: null`).
        system_prompt: a system message put first in conversations that have none (None: none).
        chat_template: a Jinja chat template, or the path of a `.jinja` file; None: the tokenizer's own, else the
            default template (`<|role|>` lines ending in end-of-text, Zephyr's layout).
        packing: pack training conversations into blocks of `max_length` tokens (position ids per conversation).
        **kwargs: tokenizer, batching, caching and split settings of `TokenizedDataModule` (`data/base.py`);
            `max_length` bounds a conversation (longer ones are cut and counted) and is the packed block size.
    """

    def __init__(
        self, source: Any, messages_column: str | None = "messages", prompt_column: str = "prompt",
        response_column: str = "response", system_prompt: str | None = None, chat_template: str | None = None,
        packing: bool = False, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(source, **{"tokenizer_type": "bpe", "lowercase": False, **kwargs})
        self.messages_column = messages_column
        self.prompt_column, self.response_column = prompt_column, response_column
        self.system_prompt = system_prompt
        self.chat_template = _read_template(chat_template)
        self.packing = packing

    def columns(self) -> dict[str, str]:
        """The messages column, or the prompt and response columns."""
        if self.messages_column:
            return {"messages_column": self.messages_column}
        return {"prompt_column": self.prompt_column, "response_column": self.response_column}

    def prediction_columns(self) -> list[str]:
        """A conversation ending in a user turn, or a prompt (a plain-text file: one prompt per line)."""
        return [self.messages_column or self.prompt_column]

    def string_columns(self) -> list[str]:
        """Prompts and responses are texts; a messages column is a list."""
        return [] if self.messages_column else [self.prompt_column, self.response_column]

    def conversations(self, data: Dataset | list[dict]) -> list[Any]:
        """The conversation of each row (a prompt/response row becomes a user and an assistant message)."""
        rows = data.to_list() if isinstance(data, Dataset) else data
        return [self._conversation(row) for row in rows]

    def _conversation(self, row: dict) -> Any:
        if self.messages_column:
            messages = row.get(self.messages_column)
            if isinstance(messages, str):  # a plain prompt (a line of a text file given to nlp-predict)
                messages = [{"role": "user", "content": messages}]
        else:
            messages = [{"role": "user", "content": row.get(self.prompt_column)}]
            if row.get(self.response_column) is not None:
                messages.append({"role": "assistant", "content": row[self.response_column]})
        if not isinstance(messages, list):
            return messages  # not a conversation: `conversation_problem` says so
        has_system = bool(messages) and isinstance(messages[0], dict) and messages[0].get("role") == "system"
        if self.system_prompt and not has_system:
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        return messages

    def check_split(self, split: str, data: Dataset) -> None:
        """Every conversation well formed, with a reply to learn."""
        for row, messages in enumerate(self.conversations(data.select_columns(list(self.columns().values())))):
            problem = chat_template.conversation_problem(messages)
            if problem:
                raise UserInputError(f"{split} row {row + 1}: {problem}")

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """The message contents, and the template's own text (its markers), once."""
        yield chat_template.DEFAULT_CHAT_TEMPLATE if self.chat_template is None else self.chat_template
        yield "".join(f"<|{role}|>\n" for role in chat_template.ROLES)
        for messages in self.conversations(train.select_columns(list(self.columns().values()))):
            yield from (message["content"] for message in messages)

    def make_tokenizer(self, texts: Iterator[str], data_key: str) -> PreTrainedTokenizerBase:
        """The configured or trained tokenizer with the chat template (and end-of-text padding where it lacks one).

        A trained tokenizer learns from the template and the system prompt too (a character vocabulary must hold
        their characters), so both are part of its cache key.
        """
        key = f"{data_key}|template={self.chat_template!r}|system={self.system_prompt!r}"
        return self._with_template(super().make_tokenizer(texts, key))

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The saved tokenizer: its chat template is the run's."""
        return self._with_template(super().load_tokenizer())

    def _with_template(self, tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        tokenizer = pad_with_eos(tokenizer)
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template
        elif not tokenizer.chat_template:
            tokenizer.chat_template = chat_template.DEFAULT_CHAT_TEMPLATE
        return tokenizer

    def cache_settings(self) -> list[Any]:
        """The template, the system prompt and packing decide the token ids too."""
        return [self.tokenizer.chat_template, self.system_prompt, self.packing, self.prompt_column,
                self.response_column]  # fmt: skip

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Ids of each conversation with the assistant's tokens as `labels` (the rest -100), cut to `max_length`.

        Prediction (`split="predict"`) encodes the conversation with the generation prompt and no labels.
        """
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        result: dict[str, list] = {"input_ids": [], "truncated": [], "length": []}
        if split == "predict":
            for messages in self.conversations(rows):
                ids = chat_template.render(self.tokenizer, messages, generation_prompt=True)
                result["input_ids"].append(ids)
                result["truncated"].append(False)  # generation keeps the prompt's end (models/generation.py)
                result["length"].append(len(ids))
            return result
        result["labels"] = []
        for messages in self.conversations(rows):
            ids, spans = chat_template.assistant_spans(self.tokenizer, messages)
            labels = [IGNORE] * len(ids)
            for span in spans:
                labels[span.start : span.stop] = ids[span.start : span.stop]
            result["truncated"].append(len(ids) > self.max_length)
            result["input_ids"].append(ids[: self.max_length])
            result["labels"].append(labels[: self.max_length])
            result["length"].append(min(len(ids), self.max_length))
        return result

    def tokenize(self, raw: DatasetDict) -> tuple[DatasetDict, dict]:
        """Encode every split; with `packing`, pack the training conversations into blocks."""
        splits, stats = self.encode_splits(raw, self.encode)
        for split, data in splits.items():
            # Cut before its first reply, a conversation has nothing to learn or score: a batch of only such rows
            # would have a NaN loss. Left out and counted (`log_truncation`).
            keep = [row for row, labels in enumerate(data["labels"]) if any(label != IGNORE for label in labels)]
            stats[split]["no_reply_left"] = data.num_rows - len(keep)
            if not keep:
                raise UserInputError(f"every {split} conversation was cut to max_length={self.max_length} tokens"
                                     " before its first reply; raise data.max_length")  # fmt: skip
            if len(keep) < data.num_rows:
                splits[split] = data.select(keep)
        if self.packing:
            splits["train"] = pack(splits["train"], self.max_length)
            stats["train"]["blocks"] = splits["train"].num_rows
        return splits, stats

    def log_truncation(self) -> None:
        """Warn how many conversations of each split were cut to `max_length` (their later turns are lost)."""
        for split, stat in self.stats.items():
            if stat.get("truncated"):
                log.warning("%s: %d of %d conversations were cut to max_length=%d tokens", split, stat["truncated"],
                            stat["examples"], self.max_length)  # fmt: skip
            if stat.get("no_reply_left"):
                log.warning("%s: left out %d conversation(s) cut before their first reply (raise data.max_length)",
                            split, stat["no_reply_left"])  # fmt: skip

    def prediction_examples(self, records: list[dict]) -> list[dict]:
        """Prediction records, each checked to be a conversation that waits for the assistant's reply."""
        for record in records:
            messages = self._conversation(record)
            problem = chat_template.conversation_problem(messages, need_assistant=False)
            if not problem and messages[-1]["role"] == "assistant":
                problem = "it ends with an assistant message; end it with the user's turn the model should answer"
            if problem:
                raise UserInputError(f"input line {record.get('line', '?')}: {problem}")
        return records

    def generation_prompts(self, prompts: list[str] | None, count: int, prompt_tokens: int) -> list[list[int]]:
        """Prompts for generated samples: each string as a user turn, else validation conversations up to a reply.

        The first `count` validation conversations, cut where their last reply starts (`prompt_tokens` is not used).
        """
        if prompts:
            return [chat_template.render(self.tokenizer, self._conversation({self.prediction_columns()[0]: text}),
                                         generation_prompt=True) for text in prompts]  # fmt: skip
        rows = self.splits["validation"].select(range(min(count, self.splits["validation"].num_rows)))
        return [ids[: last_reply(labels).start] for ids, labels in zip(rows["input_ids"], rows["labels"], strict=True)]

    def model_kwargs(self) -> dict[str, Any]:
        """The shared facts plus end-of-text, the context length and whether training blocks are packed."""
        return {**super().model_kwargs(), "eos_token_id": self.tokenizer.eos_token_id, "block_size": self.max_length,
                "packed": self.packing}  # fmt: skip

    def collator(self) -> ChatCollator:
        """Pad ids, labels (-100) and, for packed blocks, position ids."""
        return ChatCollator(self.tokenizer, self.pad_multiple())


def last_reply(labels: list[int]) -> range:
    """The token range of the last run of learned tokens (the last assistant reply, as far as it fits)."""
    stop = max((index + 1 for index, label in enumerate(labels) if label != IGNORE), default=0)
    start = stop
    while start > 0 and labels[start - 1] != IGNORE:
        start -= 1
    return range(start, stop)


def pack(data: Dataset, block_size: int) -> Dataset:
    """Conversations in order, several to a block of at most `block_size` tokens, never split across blocks.

    `position_ids` restart at 0 with every conversation: that is what tells the model where one ends.
    """
    blocks: list[dict[str, list[int]]] = []
    current: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for ids, labels in zip(data["input_ids"], data["labels"], strict=True):
        if current["input_ids"] and len(current["input_ids"]) + len(ids) > block_size:
            blocks.append(current)
            current = {"input_ids": [], "labels": [], "position_ids": []}
        current["input_ids"] += ids
        current["labels"] += labels
        current["position_ids"] += list(range(len(ids)))
    if current["input_ids"]:
        blocks.append(current)
    columns = {key: [block[key] for block in blocks] for key in ("input_ids", "labels", "position_ids")}
    return Dataset.from_dict({**columns, "length": [len(block) for block in columns["input_ids"]]})


def _read_template(template: str | None) -> str | None:
    """A template string, or the contents of a `.jinja` file it names."""
    if template and template.endswith(".jinja") and "\n" not in template:
        path = Path(template).expanduser()
        if not path.is_file():
            raise UserInputError(f"data.chat_template={template}: no such file")
        return path.read_text()
    return template


class ChatCollator:
    """Pads a batch: ids with the pad token, `labels` with -100, `attention_mask` 1 on real tokens.

    Packed blocks also get `position_ids`; their attention mask only counts real tokens (throughput): `CausalLM`
    leaves it out of the forward pass, so transformers builds attention that stays inside each conversation from the
    position ids (padding is a last "conversation" of its own, and out of the loss).
    Own collator because `DataCollatorForSeq2Seq` pads labels but not position ids, and `DataCollatorWithFlattening`
    flattens the whole batch into one row, which leaves the length-aware batching nothing to do.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None) -> None:
        self.pad_id = tokenizer.pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """The padded batch."""
        width = max(len(example["input_ids"]) for example in examples)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {"input_ids": _padded(examples, "input_ids", width, self.pad_id)}
        batch["attention_mask"] = _padded([{"mask": [1] * len(e["input_ids"])} for e in examples], "mask", width, 0)
        if "position_ids" in examples[0]:
            batch["position_ids"] = torch.tensor([list(example["position_ids"]) + list(range(width - len(
                example["position_ids"]))) for example in examples])  # fmt: skip
        if "labels" in examples[0]:
            batch["labels"] = _padded(examples, "labels", width, IGNORE)
        return batch


def _padded(examples: list[dict], key: str, width: int, value: int) -> torch.Tensor:
    return torch.tensor([list(example[key]) + [value] * (width - len(example[key])) for example in examples])
