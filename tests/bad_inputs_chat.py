"""Bad-input catalogue table: chat fine-tuning (SFT) data and settings.

Run with `pytest tests/test_bad_input.py -k "<id>"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

import json

from catalogue import Case

SFT = ["experiment=sft_tiny", "trainer.max_epochs=1", "extras.print_config=false"]
FILES_SFT = [*SFT, "data=chat_files", "data.tokenizer_type=char"]
TURNS = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]


def _chats(odd: dict[int, list[dict]], rows: int = 12) -> str:
    """JSONL conversations, row i (0-based) replaced by `odd[i]` where given."""
    return "".join(json.dumps({"messages": odd.get(i, TURNS)}) + "\n" for i in range(rows))


FILES = {
    "chat_role.jsonl": _chats({4: [{"role": "bot", "content": "hi"}, *TURNS]}),
    "chat_no_reply.jsonl": _chats({7: TURNS[:1]}),
    "chat_ok.jsonl": _chats({}),
}

# fmt: off
CASES = [
    Case("sft-unknown-role", "train", [*FILES_SFT, "data.source.train={tmp}/chat_role.jsonl"],
         r"^train row 5: message 1 has the unknown role 'bot' \(roles: system, user, assistant\)$"),
    Case("sft-no-assistant-turn", "train", [*FILES_SFT, "data.source.train={tmp}/chat_no_reply.jsonl"],
         r"^train row 8: it has no assistant message, so nothing to learn"),
    Case("sft-template-fails-to-render", "train",
         [*FILES_SFT, "data.source.train={tmp}/chat_ok.jsonl",
          "data.chat_template='{{{{ raise_exception(\"only one turn, please\") }}}}'"],
         r"^the chat template failed to render a conversation: only one turn, please; fix data.chat_template"),
    Case("sft-template-leaves-out-replies", "train",
         [*FILES_SFT, "data.source.train={tmp}/chat_ok.jsonl",
          "data.chat_template='{{% for m in messages %}}{{% if m.role == \"user\" %}}{{{{ m.content }}}}{{% endif %}}"
          "{{% endfor %}}'"],
         r"^the chat template renders assistant message 2 \('4'\) as no tokens, so there is nothing to learn"),
    Case("sft-template-file-missing", "train", [*FILES_SFT, "data.source.train={tmp}/chat_ok.jsonl",
                                                "data.chat_template={tmp}/nowhere.jinja"],
         r"^data.chat_template=.*nowhere.jinja: no such file$"),
    Case("sft-packing-with-cross-attention", "train",
         [*SFT, "data.packing=true", "~model.config",
          "+model.config={{model_type: opt, hidden_size: 32, ffn_dim: 64, num_hidden_layers: 1, num_attention_heads: 2,"
          " word_embed_proj_dim: 32, max_position_embeddings: 256}}"],
         r"^data.packing=true: this model \(opt, attention \w+\) lets packed conversations attend to each other"),
]
# fmt: on
