"""Remove the tasks a project does not need: `make strip KEEP="text_classification token_classification"`.

Deletes the modules, configs and tests that only the removed tasks use (a file shared with a kept task stays), drops
their imports from package `__init__` files, and records what went in `.stripped.json`, from which `tests/conftest.py`
deselects the shared tests and documented commands that name a removed task's configs. The project left behind
trains, evaluates, predicts and exports as before, and its `make test` passes (tests/test_strip.py strips a copy and
runs its tests). Docs still describe the removed tasks: the lines that name them are listed at the end, to edit.

`text_classification` is the reference task and always stays: the default run (`make train`), the notebook and the
shared tests (runs, resume, export, the bad-input catalogue) exercise the shared code through it.

Run it on a clean git tree (it refuses otherwise, so `git checkout .` can undo it); `--dry-run` lists the files.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = "src/nlp_template"
RECORD = ".stripped.json"
REFERENCE = "text_classification"

# Per task: the files it uses (relative to the project root) and its configs (group -> names). A file several tasks
# list is removed only when all of them are.
TASKS: dict[str, dict] = {
    "text_classification": {
        "files": [
            f"{SRC}/data/text_classification.py",
            f"{SRC}/data/samples/sentiment.py",
            f"{SRC}/data/samples/pairs.py",
            f"{SRC}/data/samples/reviews.py",
            f"{SRC}/models/text_classifier.py",
            f"{SRC}/models/rnn_classifier.py",
        ],
        "configs": {
            "data": ["sample_sentiment", "sample_pairs", "sample_reviews", "files", "sst2"],
            "model": ["text_classifier", "text_classifier_pretrained", "rnn_classifier"],
            "experiment": [
                "sentiment_tiny",
                "sentiment_lstm",
                "pairs_tiny",
                "sst2_minilm",
                "sst2_lstm",
                "regression_tiny",
                "multilabel_tiny",
            ],
            "hparams_search": ["sentiment_optuna"],
        },
    },
    "token_classification": {
        "files": [
            f"{SRC}/data/token_classification.py",
            f"{SRC}/data/conll.py",
            f"{SRC}/data/samples/entities.py",
            f"{SRC}/models/token_classifier.py",
            f"{SRC}/metrics/entities.py",
            "tests/test_ner.py",
            "tests/test_conll.py",
            "tests/test_entities.py",
            "tests/test_entity_samples.py",
        ],
        "configs": {
            "data": ["conll", "conll2003", "sample_entities"],
            "model": ["token_classifier", "token_classifier_pretrained"],
            "experiment": ["ner_tiny", "ner_conll"],
        },
    },
    "language_modeling": {
        # The language model's embedded corpus is the sentiment generator's text (data/samples/sentiment.py).
        "files": [
            f"{SRC}/data/language_modeling.py",
            f"{SRC}/data/samples/sentiment.py",
            f"{SRC}/models/causal_lm.py",
            f"{SRC}/models/generation.py",
            f"{SRC}/callbacks/generation.py",
            f"{SRC}/data/streaming.py",
            f"{SRC}/data/stream_shards.py",
            "bench/stream_vs_arrow.py",
            "tests/test_lm.py",
            "tests/test_streaming.py",
        ],
        "configs": {
            "data": ["sample_text", "text_files", "tiny_shakespeare", "stream_files"],
            "model": ["causal_lm"],
            "callbacks": ["generation", "language_model"],
            "experiment": ["lm_tiny", "lm_text_files", "shakespeare_char", "lm_stream"],
        },
    },
    "seq2seq": {
        "files": [
            f"{SRC}/data/seq2seq.py",
            f"{SRC}/data/parallel.py",
            f"{SRC}/data/samples/translation.py",
            f"{SRC}/models/seq2seq.py",
            "conf/data/common/seq2seq.yaml",
            "tests/test_seq2seq.py",
        ],
        "configs": {
            "data": ["sample_translation", "parallel_files", "translation_files", "multi30k"],
            "model": ["seq2seq"],
            "experiment": ["translation_tiny", "translation_multi30k"],
        },
    },
    "chat": {
        # Supervised fine-tuning is causal language modelling on conversations: it shares that task's model.
        "files": [
            f"{SRC}/data/chat.py",
            f"{SRC}/data/chat_template.py",
            f"{SRC}/data/language_modeling.py",
            f"{SRC}/data/samples/instructions.py",
            f"{SRC}/models/chat_lm.py",
            f"{SRC}/models/causal_lm.py",
            f"{SRC}/models/generation.py",
            f"{SRC}/callbacks/generation.py",
            "bench/sft_instructions.py",
            "tests/test_chat.py",
        ],
        "configs": {
            "data": ["sample_instructions", "chat_files"],
            "model": ["chat_lm", "causal_lm"],
            "callbacks": ["generation", "language_model"],
            "experiment": ["sft_tiny"],
        },
    },
    "masked_lm": {
        "files": [
            f"{SRC}/data/masked_lm.py",
            f"{SRC}/data/masking.py",
            f"{SRC}/data/language_modeling.py",
            f"{SRC}/data/samples/sentiment.py",
            f"{SRC}/models/masked_lm.py",
            "bench/mlm_domain_adaptation.py",
            f"{SRC}/data/streaming_mlm.py",
            f"{SRC}/data/streaming.py",
            f"{SRC}/data/stream_shards.py",
            "tests/test_mlm.py",
            "tests/test_streaming.py",
        ],
        "configs": {
            "data": ["mlm_sample_text", "mlm_text_files", "mlm_stream_files"],
            "model": ["masked_lm"],
            "experiment": ["mlm_tiny"],
        },
    },
    "multiple_choice": {
        "files": [
            f"{SRC}/data/multiple_choice.py",
            f"{SRC}/data/samples/choices.py",
            f"{SRC}/models/multiple_choice.py",
            "tests/test_multiple_choice.py",
        ],
        "configs": {
            "data": ["sample_choices", "choice_files"],
            "model": ["multiple_choice"],
            "experiment": ["choices_tiny"],
        },
    },
    "question_answering": {
        "files": [
            f"{SRC}/data/question_answering.py",
            f"{SRC}/data/qa_windows.py",
            f"{SRC}/data/squad.py",
            f"{SRC}/data/samples/qa.py",
            f"{SRC}/models/question_answering.py",
            f"{SRC}/models/qa_answers.py",
            f"{SRC}/metrics/squad.py",
            "tests/test_qa.py",
            "tests/test_qa_parts.py",
        ],
        "configs": {
            "data": ["squad", "sample_qa"],
            "model": ["question_answering"],
            "experiment": ["qa_tiny", "qa_squad_minilm"],
        },
    },
}


def plan(keep: set[str]) -> tuple[list[Path], dict[str, list[str]]]:
    """The files to delete and the configs removed (group -> names) when only the `keep` tasks stay."""
    kept_files = {file for task in keep for file in TASKS[task]["files"]}
    kept_configs = {(group, name) for task in keep for group, names in TASKS[task]["configs"].items()
                    for name in names}  # fmt: skip
    files, configs = set(), {}
    for task, owned in TASKS.items():
        if task in keep:
            continue
        files.update(file for file in owned["files"] if file not in kept_files)
        for group, names in owned["configs"].items():
            for name in names:
                if (group, name) not in kept_configs:
                    files.add(f"conf/{group}/{name}.yaml")
                    configs.setdefault(group, []).append(name)
    return sorted(ROOT / file for file in files), configs


def module_name(path: Path) -> str:
    """`src/nlp_template/data/conll.py` -> `nlp_template.data.conll`."""
    return ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)


def drop_imports(removed_modules: list[str]) -> list[Path]:
    """Remove `from <removed> import X` lines (and X from `__all__`) in the package `__init__` files."""
    changed = []
    for init in sorted((ROOT / SRC).rglob("__init__.py")):
        text = init.read_text()
        new = text
        for module in removed_modules:
            for names in re.findall(rf"^from {re.escape(module)} import (.+)\n", new, flags=re.MULTILINE):
                new = re.sub(rf"^from {re.escape(module)} import .+\n", "", new, flags=re.MULTILINE)
                for name in names.split(","):
                    new = re.sub(rf'"{name.strip()}",? ?', "", new)
        if new != text:
            init.write_text(new.replace(", ]", "]"))
            changed.append(init)
    return changed


def mentions(configs: dict[str, list[str]]) -> list[str]:
    """`file:line` of the README and docs lines that name a removed config (to edit by hand)."""
    names = [name for group in configs.values() for name in group]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{page.relative_to(ROOT)}:{number}")
    return found


def clean_tree() -> bool:
    """Whether git reports no uncommitted change (True outside a git checkout: nothing to compare with)."""
    result = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.returncode != 0 or not result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """Parse `--keep`, check it, and strip (or list with `--dry-run`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", nargs="+", required=True, help=f"tasks to keep, from {sorted(TASKS)}")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, change nothing")
    parser.add_argument("--force", action="store_true", help="strip even with uncommitted changes")
    args = parser.parse_args(argv)
    keep = {name for value in args.keep for name in value.replace(",", " ").split()}
    unknown = sorted(keep - set(TASKS))
    if unknown:
        print(f"error: unknown task(s) {unknown}; KEEP takes names from {sorted(TASKS)}", file=sys.stderr)
        return 1
    keep.add(REFERENCE)
    record_path = ROOT / RECORD
    record = {"removed": [], "configs": {}, "files": []}
    record.update(json.loads(record_path.read_text()) if record_path.is_file() else {})
    gone = sorted(set(TASKS) - keep - set(record["removed"]))
    files, configs = plan(keep)
    files = [file for file in files if file.exists()]
    if not files:
        print(f"Nothing to remove: the project holds only {sorted(keep - set(record['removed']))}.")
        return 0
    if args.dry_run:
        print("Would remove tasks", gone, "and these files:", *(f"  {f.relative_to(ROOT)}" for f in files), sep="\n")
        return 0
    if not args.force and not clean_tree():
        print("error: the git tree has uncommitted changes; commit or stash them first (so `git checkout .` can"
              " undo the strip), or pass --force", file=sys.stderr)  # fmt: skip
        return 1
    removed_modules = [module_name(file) for file in files if file.suffix == ".py" and file.is_relative_to(ROOT / SRC)]
    for file in files:
        file.unlink()
    changed = drop_imports(removed_modules)
    record["removed"] = sorted(set(record["removed"]) | set(gone))
    record["files"] = sorted(set(record["files"]) | {str(file.relative_to(ROOT)) for file in files})
    for group, names in configs.items():
        record["configs"][group] = sorted(set(record["configs"].get(group, [])) | set(names))
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"Removed tasks {gone}: {len(files)} files; edited {[str(p.relative_to(ROOT)) for p in changed]};"
        f" recorded in {RECORD}."
    )
    lines = mentions(record["configs"])
    if lines:
        print(f"The docs still name removed configs in {len(lines)} lines (edit when convenient):", *lines[:40],
              *(["..."] if len(lines) > 40 else []), sep="\n  ")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
