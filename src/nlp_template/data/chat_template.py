"""Chat conversations -> token ids and the spans the model learns (its own replies), through a chat template.

Tokens come from `tokenizer.apply_chat_template(..., tokenize=True)`, the call a Hugging Face pipeline makes at
inference, so training feeds the model exactly the ids it will see later (transformers also encodes special tokens
written inside a message as plain text there). Which tokens are the assistant's is found by rendering beginnings of
the conversation: for the i-th assistant message, the conversation up to it with the generation prompt
(`...<|assistant|>` and a line break) ends where its tokens start, and the conversation up to and including it ends
where they stop (the end-of-turn token included, so the model learns to stop). This works with any template that
renders a conversation's beginning as the beginning of the whole; one that does not (e.g. a template that rewrites
earlier turns) is refused with a one-line error. transformers' own `return_assistant_tokens_mask` needs
`{% generation %}` markers in the template, which few published templates have.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from nlp_template.utils.errors import UserInputError, one_line

# Used when the tokenizer has no chat template and none is configured (Zephyr's layout): every message is
# `<|role|>`, a line break, the content and the end-of-text token; the generation prompt is `<|assistant|>\n`.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\n' }}{%- endif %}"
)
ROLES = ("system", "user", "assistant")


def conversation_problem(messages: Any, need_assistant: bool = True) -> str | None:
    """What is wrong with one conversation (a list of `{role, content}`), or None.

    Roles are `system`, `user` and `assistant`; contents are strings; training needs an assistant message to learn.
    """
    if not isinstance(messages, list) or not messages:
        return f"messages must be a non-empty list of {{role, content}}, got {type(messages).__name__}"
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            return f"message {number} is not a {{role, content}} mapping"
        if message["role"] not in ROLES:
            return f"message {number} has the unknown role {message['role']!r} (roles: {', '.join(ROLES)})"
        if not isinstance(message["content"], str):
            return f"message {number} ({message['role']}) has content of type {type(message['content']).__name__}"
    if need_assistant and not any(message["role"] == "assistant" for message in messages):
        return "it has no assistant message, so nothing to learn (each conversation needs at least one reply)"
    return None


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], generation_prompt: bool = False) -> list[int]:
    """The conversation's token ids under the tokenizer's chat template (with the generation prompt if asked)."""
    try:
        return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False,
                                                  add_generation_prompt=generation_prompt))  # fmt: skip
    except TemplateError as error:
        raise UserInputError(f"the chat template failed to render a conversation: {one_line(str(error))}; fix"
                             " data.chat_template (or the conversation)") from error  # fmt: skip


def assistant_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> tuple[list[int], list[range]]:
    """The conversation's ids and, for each assistant message, the range of its tokens in them."""
    ids = render(tokenizer, messages)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_prefix_of(tokenizer, ids, render(tokenizer, messages[:index], generation_prompt=True)))
        stop = len(_prefix_of(tokenizer, ids, render(tokenizer, messages[: index + 1])))
        if stop <= start:  # a template that leaves replies out would train on nothing (a NaN loss)
            raise UserInputError(
                f"the chat template renders assistant message {index + 1} ({message['content'][:30]!r}) as no"
                " tokens, so there is nothing to learn; use a template that writes the assistant's messages"
                " (data.chat_template)"
            )
        spans.append(range(start, stop))
    return ids, spans


def _prefix_of(tokenizer: PreTrainedTokenizerBase, ids: list[int], prefix: list[int]) -> list[int]:
    """`prefix`, checked to be how `ids` begins."""
    if ids[: len(prefix)] != prefix:
        raise UserInputError(
            f"the chat template does not render a conversation's beginning as the beginning of the whole"
            f" ({tokenizer.decode(prefix[-20:])!r} ...), so the assistant's tokens cannot be found; use a template"
            " that keeps earlier turns as they are (data.chat_template)"
        )
    return prefix
