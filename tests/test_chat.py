"""Chat SFT: assistant-only labels token by token, templates, packing, exact match, predict and the HF export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import FAST

from nlp_template.data.chat import ChatDataModule, last_reply
from nlp_template.data.chat_template import DEFAULT_CHAT_TEMPLATE
from nlp_template.data.samples import InstructionSamples
from nlp_template.data.sources import FileSource
from nlp_template.models.causal_lm import CausalLM
from nlp_template.utils.errors import UserInputError

pytestmark = pytest.mark.task("chat")

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Reverse: cat"},
    {"role": "assistant", "content": "tac"},
]
# The conversation rendered by the default template, piece by piece: (text, learned?).
PIECES = [("<|system|>\nBe brief.", False), ("<eos>", False), ("\n<|user|>\nWhat is 2 + 3?", False),
          ("<eos>", False), ("\n<|assistant|>\n", False), ("5", True), ("<eos>", True), ("\n", True),
          ("<|user|>\nReverse: cat", False), ("<eos>", False), ("\n<|assistant|>\n", False), ("tac", True),
          ("<eos>", True), ("\n", True)]  # fmt: skip
CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def prepare(tmp_path: Path, source=None, **kwargs) -> ChatDataModule:
    source = source or FileSource(train=str(write_jsonl(tmp_path / "chat.jsonl", [{"messages": CONVERSATION}] * 8)))
    settings = {"tokenizer_type": "char", "cache_dir": str(tmp_path / "cache"), "validation_fraction": 0.25}
    dm = ChatDataModule(source, **{**settings, **kwargs})
    dm.prepare_data()
    return dm


def test_only_the_assistant_replies_are_learned_token_by_token_in_a_multi_turn_conversation(tmp_path):
    dm = prepare(tmp_path)
    tokenizer = dm.tokenizer
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE  # a trained tokenizer has none of its own
    expected_ids, expected_labels = [], []
    for text, learned in PIECES:  # character-level: the pieces' ids concatenate to the whole conversation's
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        expected_ids += ids
        expected_labels += ids if learned else [-100] * len(ids)
    row = dm.splits["train"][0]
    assert row["input_ids"] == expected_ids
    assert row["labels"] == expected_labels
    learned = [token for token, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert tokenizer.decode(learned) == "5<eos>\ntac<eos>\n"
    assert last_reply(row["labels"]) == range(len(expected_ids) - 5, len(expected_ids))  # "tac<eos>\n"
    batch = dm.collator()([dm.splits["train"][0], {"input_ids": [5, 6], "labels": [-100, 6]}])
    assert batch["labels"][1].tolist() == [-100, 6] + [-100] * (len(expected_ids) - 2)
    assert batch["attention_mask"][1].sum() == 2 and "position_ids" not in batch


def test_a_chatml_template_from_a_file_prompt_response_columns_and_a_system_prompt(tmp_path):
    template = tmp_path / "chatml.jinja"
    template.write_text(CHATML)
    rows = [{"prompt": f"Say {word}", "response": word.upper()} for word in ("hi", "yes", "no", "ok")] * 3
    source = FileSource(train=str(write_jsonl(tmp_path / "pairs.jsonl", rows)))
    dm = prepare(tmp_path, source, messages_column=None, chat_template=str(template), system_prompt="Shout.",
                 tokenizer_type="bpe", vocab_size=400)  # fmt: skip
    assert dm.tokenizer.chat_template == CHATML
    for row in dm.splits["train"]:
        text = dm.tokenizer.decode(row["input_ids"])
        assert text.startswith("<|im_start|>system\nShout.<|im_end|>\n<|im_start|>user\nSay ")
        learned = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
        reply = text.split("<|im_start|>assistant\n")[1]
        assert dm.tokenizer.decode(learned) == reply and reply.endswith("<|im_end|>\n")


def test_packing_restarts_positions_and_gives_each_conversation_the_loss_it_has_alone(tmp_path):
    source = InstructionSamples(num_train=40, num_validation=8, num_test=8)
    plain = prepare(tmp_path / "plain", source, max_length=256)
    packed = prepare(tmp_path / "packed", source, max_length=256, packing=True)
    assert packed.stats["train"]["blocks"] < plain.splits["train"].num_rows
    block = packed.splits["train"][0]
    starts = [i for i, position in enumerate(block["position_ids"]) if position == 0]
    assert len(starts) > 1 and len(block["input_ids"]) <= 256
    rows = [plain.splits["train"][i] for i in range(len(starts))]
    assert block["input_ids"] == [t for row in rows for t in row["input_ids"]]
    assert block["labels"] == [t for row in rows for t in row["labels"]]
    # No attention across conversations: the packed block's loss over its replies is the unpacked batch's.
    torch.manual_seed(0)
    model = CausalLM(config={"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
                             "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2},
                     **packed.model_kwargs()).eval()  # fmt: skip
    packed_batch, plain_batch = packed.collator()([block]), plain.collator()(rows)
    assert packed_batch["attention_mask"].sum() == len(block["input_ids"])  # counts real tokens (not used by attention)
    with torch.no_grad():
        packed_logits = model(**packed_batch).logits[0]
        alone = [model(**plain.collator()([row])).logits[0] for row in rows]
        assert torch.allclose(packed_logits, torch.cat(alone), atol=1e-5)
        tokens = (plain_batch["labels"][:, 1:] != -100).sum()
        assert tokens == (packed_batch["labels"][:, 1:] != -100).sum()  # no reply token is lost by packing
    with pytest.raises(UserInputError, match=r"^data.packing=true: this model \(opt, attention .*\) lets packed"):
        CausalLM(config={"model_type": "opt", "hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "word_embed_proj_dim": 32}, **packed.model_kwargs())  # fmt: skip


def test_conversation_checks_name_the_row_and_the_problem(tmp_path):
    def fails(rows: list[dict], match: str, **kwargs) -> None:
        path = write_jsonl(tmp_path / f"bad{len(list(tmp_path.iterdir()))}.jsonl", rows)
        with pytest.raises(UserInputError, match=match):
            prepare(tmp_path / path.stem, FileSource(train=str(path)), **kwargs)

    good = {"messages": CONVERSATION}
    fails(
        [good, {"messages": [{"role": "human", "content": "hi"}]}, good],
        r"^train row 2: message 1 has the unknown role 'human' \(roles: system, user, assistant\)$",
    )
    fails(
        [good, good, {"messages": [{"role": "user", "content": "hi"}]}],
        r"^train row 3: it has no assistant message, so nothing to learn",
    )
    fails(
        [good] * 4,
        r"^the chat template failed to render a conversation: roles must alternate; fix data.chat",
        chat_template="{{ raise_exception('roles must alternate') }}",
    )


@pytest.mark.slow
def test_sft_learns_replies_evaluates_predicts_and_exports_with_its_chat_template(make_cfg, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from nlp_template.eval import evaluate
    from nlp_template.export import export
    from nlp_template.predict import predict
    from nlp_template.train import train

    cfg = make_cfg(["experiment=sft_tiny", *FAST, "data.source.num_train=4000", "trainer.max_epochs=3"])
    metrics = train(cfg)
    assert metrics["test/exact_match"] > EXACT_MATCH_AFTER_3_EPOCHS, metrics
    ckpt = metrics["best_model_path"]
    again = evaluate(make_cfg([f"ckpt_path={ckpt}"], name="eval", run="eval"))
    assert again["test/exact_match"] == pytest.approx(metrics["test/exact_match"], abs=1e-6)

    conversations = [
        [{"role": "user", "content": "Write in capitals: river"}],
        [
            {"role": "system", "content": "Reply briefly."},
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "Reverse the word: lamp"},
        ],
    ]
    inputs = write_jsonl(tmp_path / "chats.jsonl", [{"messages": messages} for messages in conversations])
    results = predict(make_cfg([f"ckpt_path={ckpt}", f"input={inputs}", f"output={tmp_path / 'p.jsonl'}"],
                               name="predict"))  # fmt: skip
    assert [row["messages"] for row in results] == conversations and all("response" in row for row in results)
    assert results[0]["response"] == "RIVER", results  # the easiest family: learned in the first epoch
    text = tmp_path / "prompts.txt"
    text.write_text("Write in capitals: river\n")  # a plain-text file: one user turn per line
    (plain,) = predict(make_cfg([f"ckpt_path={ckpt}", f"input={text}", f"output={tmp_path / 'q.jsonl'}"],
                                name="predict"))  # fmt: skip
    assert plain["response"] == "RIVER"

    hf = export(make_cfg([f"ckpt_path={ckpt}", f"output={tmp_path / 'hf'}", "format=hf"], name="export"))
    tokenizer = AutoTokenizer.from_pretrained(hf)
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE  # kept in the export's tokenizer config
    model = AutoModelForCausalLM.from_pretrained(hf)
    chat = pipeline("text-generation", model=model, tokenizer=tokenizer)
    for messages, ours in zip(conversations, results, strict=True):
        reply = chat(messages, max_new_tokens=80, do_sample=False)[0]["generated_text"][-1]
        assert reply == {"role": "assistant", "content": ours["response"]}


# Measured with the test's settings (4,000 conversations, 3 epochs, 100 test conversations): test exact match 0.444
# (val 0.552) in 128 s; 5 epochs of the full experiment: 0.569 (docs/tasks.md "Chat fine-tuning (SFT)").
EXACT_MATCH_AFTER_3_EPOCHS = 0.35
