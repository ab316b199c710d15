"""The project-template files agree with the project: CI workflow, pre-commit hooks, Dockerfile, devcontainer, .env.

Fast and offline: files are parsed, nothing is built or run except two validators of the dev extra.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
PRE_COMMIT = ROOT / ".pre-commit-config.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
ENV_EXAMPLE = ROOT / ".env.example"
# The venv running the tests: `make install-dev` put the dev extra's tools next to its python (not resolved: a venv's
# python is a link to the base interpreter, whose folder holds none of them).
VENV_BIN = Path(sys.executable).parent

# Where a variable named in .env.example may be read: the project's code, configs, tests, notebook, scripts and docs.
# Not the files that only list variables (.env.example, the page describing it, this test).
SEARCHED = ["src", "conf", "tests", "notebooks", "bench", "docs", ".ci", ".github", "Makefile", "Dockerfile",
            "README.md", "pyproject.toml"]  # fmt: skip
NOT_SEARCHED = {ENV_EXAMPLE, ROOT / "docs" / "development.md", Path(__file__).resolve()}
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".md", ".ipynb", ".sh", ".toml", ".json", ".txt", ""}
# Variables no project file reads but a library the project depends on does: the file of that library that reads it.
LIBRARY_READERS = {
    "HF_HOME": ("huggingface_hub", "constants.py"),
    "CUDA_VISIBLE_DEVICES": ("torch", "cuda/__init__.py"),
}


# --- the CI workflow ---


def load_workflow() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps_using(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").split("@")[0] == action]


def test_workflow_runs_the_tests_and_the_hooks_on_push_and_pull_request():
    workflow = load_workflow()
    assert {"push", "pull_request"} <= set(workflow["on"])
    jobs = workflow["jobs"]
    assert {"test", "lint"} <= set(jobs)
    for name, job in jobs.items():
        assert job["runs-on"] == "ubuntu-latest", name
        assert job["timeout-minutes"] == 90, name
        assert steps_using(job, "actions/checkout"), name
        [setup] = steps_using(job, "actions/setup-python")
        assert str(setup["with"]["python-version"]) == "3.11", name
        assert setup["with"]["cache"] == "pip", name
        assert setup["with"]["cache-dependency-path"] == "pyproject.toml", name
    [test_step] = [step for step in jobs["test"]["steps"] if step.get("run", "").strip() == "bash .ci/run"]
    assert str(test_step["env"]["CI"]).lower() == "true"  # .ci/run starts from a fresh .venv only then
    assert any(step.get("run", "").strip() == "make lint" for step in jobs["lint"]["steps"])
    # torch's CPU build for the CPU-only runners (see the comment in the workflow).
    assert workflow["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"


def test_workflow_matches_the_github_workflow_schema():
    tool = shutil.which("check-jsonschema", path=str(VENV_BIN)) or shutil.which("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed (it is in the dev extra)")
    # The schema is vendored in check-jsonschema: nothing is downloaded.
    result = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# --- pre-commit ---


def local_hooks() -> list[dict]:
    config = yaml.safe_load(PRE_COMMIT.read_text())
    assert all(repo["repo"] == "local" for repo in config["repos"]), "hooks come from the venv, not from GitHub"
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_pre_commit_hooks_run_the_dev_extras_tools():
    hooks = local_hooks()
    expected = {"ruff-check", "ruff-format", "nbstripout", "end-of-file-fixer", "trailing-whitespace", "check-yaml",
                "check-added-large-files", "check-merge-conflict"}  # fmt: skip
    assert expected <= {hook["id"] for hook in hooks}
    for hook in hooks:
        assert hook["language"] == "system", hook["id"]
        executable = shlex.split(hook["entry"])[0]
        assert "/" not in executable, f"{hook['id']}: found on PATH (make lint puts the venv first), not by a path"
        path = VENV_BIN / executable
        assert path.is_file() and os.access(path, os.X_OK), (
            f"{hook['id']}: `{executable}` is not in {VENV_BIN}: add its package to the dev extra (pyproject.toml)"
        )
    ruff_check = next(hook for hook in hooks if hook["id"] == "ruff-check")
    assert "--fix" in shlex.split(ruff_check["entry"])


def test_pre_commit_config_is_valid():
    tool = VENV_BIN / "pre-commit"
    if not tool.is_file():
        pytest.skip("pre-commit is not installed (it is in the dev extra)")
    result = subprocess.run([str(tool), "validate-config", str(PRE_COMMIT)], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_lint_runs_every_hook_on_every_file():
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None
    assert "pre-commit run --all-files" in recipe.group(1)


# --- .env.example ---


def env_example_entries() -> list[str]:
    """The variables .env.example assigns (every assignment there is commented out)."""
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE)


def searched_text() -> str:
    files = []
    for name in SEARCHED:
        path = ROOT / name
        files += sorted(path.rglob("*")) if path.is_dir() else [path] if path.is_file() else []
    return "\n".join(
        file.read_text(errors="ignore")
        for file in files
        if file.is_file() and file.suffix in TEXT_SUFFIXES and file.resolve() not in NOT_SEARCHED
        and "__pycache__" not in file.parts
    )  # fmt: skip


def read_by_library(name: str) -> bool:
    package, relative = LIBRARY_READERS[name]
    spec = importlib.util.find_spec(package)  # finds the package without importing it (torch takes seconds)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return name in (Path(spec.submodule_search_locations[0]) / relative).read_text()


def test_every_variable_in_env_example_is_read():
    entries = env_example_entries()
    assert len(entries) == len(set(entries)), "a variable is listed twice"
    text = searched_text()
    unread = [
        name for name in entries
        if not re.search(rf"\b{name}\b", text) and not (name in LIBRARY_READERS and read_by_library(name))
    ]  # fmt: skip
    assert not unread, f".env.example lists variables that nothing reads: {unread}"


def environ_reads(path: Path) -> set[str]:
    """Names of the environment variables a module reads: os.environ[...], .get/.pop/.setdefault, `in`, os.getenv.

    Found in the code, not in its strings (a message's `${oc.env:SEED}` example is no read). A name may be a module
    constant (`ROOT_ENV = "..."`) or a loop over a tuple of them (`for name in DDP_ENV_VARS`).
    """
    tree = ast.parse(path.read_text())
    constants: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant | ast.Tuple | ast.List):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            values = [value] if isinstance(value, str) else list(value) if isinstance(value, tuple | list) else []
            if values and all(isinstance(item, str) for item in values):
                constants |= {target.id: values for target in targets if isinstance(target, ast.Name)}
    loops = {
        node.target.id: constants[node.iter.id]
        for node in ast.walk(tree)
        if isinstance(node, ast.comprehension | ast.For) and isinstance(node.target, ast.Name)
        and isinstance(node.iter, ast.Name) and node.iter.id in constants
    }  # fmt: skip

    def names(node: ast.expr) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name):
            return constants.get(node.id) or loops.get(node.id, [])
        return []

    def is_environ(node: ast.expr) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) \
            and node.value.id == "os"  # fmt: skip

    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
            found.update(names(node.slice))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            environ_method = node.func.attr in {"get", "pop", "setdefault"} and is_environ(node.func.value)
            getenv = node.func.attr == "getenv" and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
            if environ_method or getenv:
                found.update(names(node.args[0]))
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn) \
                and is_environ(node.comparators[0]):  # fmt: skip
            found.update(names(node.left))
    return found


def test_environ_reads_are_found():
    """The finder above sees the reads it is meant to (else the next test would pass by finding nothing)."""
    found = set().union(*(environ_reads(path) for path in (ROOT / "src").rglob("*.py")))
    assert {"WANDB_API_KEY", "HYDRA_FULL_ERROR", "NLP_TEMPLATE_ROOT", "MASTER_ADDR", "TORCHELASTIC_RUN_ID"} <= found


def test_every_variable_the_code_and_configs_read_is_in_env_example():
    read = {name: path for path in (ROOT / "src").rglob("*.py") for name in environ_reads(path)}
    for path in (ROOT / "conf").rglob("*.yaml"):
        read |= dict.fromkeys(re.findall(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)", path.read_text()), path)
    listed = ENV_EXAMPLE.read_text()
    missing = {name: str(path.relative_to(ROOT)) for name, path in read.items()
               if not re.search(rf"\b{name}\b", listed)}  # fmt: skip
    assert not missing, f"read but not in .env.example (add each, with a comment): {missing}"


# --- Dockerfile, .dockerignore, devcontainer ---


def dockerfile_stages() -> tuple[dict[str, str], list[dict]]:
    """The global ARGs (name: default) and the stages, each {"name", "from", "instructions": [(KEYWORD, args)]}."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # comments end nothing: Docker drops them inside continuations too
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[dict] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            image, _, name = args.partition(" AS ") if " AS " in args else args.partition(" as ")
            stages.append({"name": name.strip(), "from": image.strip(), "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, args))
        elif keyword == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default
    return global_args, stages


def last(stage: dict, keyword: str) -> str | None:
    values = [args for key, args in stage["instructions"] if key == keyword]
    return values[-1] if values else None


def test_dockerfile_trains_by_default_on_a_selectable_base():
    global_args, stages = dockerfile_stages()
    assert global_args["BASE"] == "python:3.11-slim"
    assert "TORCH_INDEX_URL" in global_args
    assert stages[0]["from"] == "${BASE}"
    by_name = {stage["name"]: stage for stage in stages}
    default = stages[-1]  # what `docker build .` builds
    assert json.loads(last(default, "CMD")) == ["make", "train"]
    assert any(key == "RUN" and "make install" in args for key, args in default["instructions"])
    assert json.loads(last(by_name["test"], "CMD")) == ["make", "test"]
    assert any(key == "RUN" and "make install-dev" in args for key, args in by_name["test"]["instructions"])
    serve = by_name["serve"]  # nlp-serve on 8000, with the serve extra's server
    assert json.loads(last(serve, "CMD"))[0] == "nlp-serve" and last(serve, "EXPOSE") == "8000"
    assert any(key == "RUN" and "fastapi" in args and "uvicorn" in args for key, args in serve["instructions"])
    for stage in (default, by_name["test"], serve):  # the user each image runs as: its own last USER, or its parent's
        user, parent = last(stage, "USER"), stage
        while user is None and parent["from"] in by_name:
            parent = by_name[parent["from"]]
            user = last(parent, "USER")
        assert user not in {None, "0", "root"}, f"stage {stage['name']} runs as root"


def test_dockerignore_keeps_local_state_out_and_the_project_in():
    patterns = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}  # fmt: skip
    assert {".venv", ".git", "logs", ".cache", "data", ".env"} <= patterns
    assert not patterns & {"src", "conf", ".project-root", "Makefile", "pyproject.toml", "tests", ".github"}


def strip_json_comments(text: str) -> str:
    """JSON with comments and trailing commas (devcontainer.json) as plain JSON; `//` inside strings is kept."""
    token = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
    text = token.sub(lambda match: match.group(0) if match.group(0).startswith('"') else "", text)
    return re.sub(r",(\s*[}\]])", r"\1", text)


def test_devcontainer_builds_the_dockerfiles_dev_image():
    config = json.loads(strip_json_comments(DEVCONTAINER.read_text()))
    build = config["build"]
    assert (DEVCONTAINER.parent / build["dockerfile"]).resolve() == DOCKERFILE
    assert (DEVCONTAINER.parent / build["context"]).resolve() == ROOT
    assert build["target"] == "test"
    assert config["postCreateCommand"] == "make install-dev"
    assert {"ms-python.python", "charliermarsh.ruff"} <= set(config["customizations"]["vscode"]["extensions"])
    # The image's editable install points at /home/app/project/src: the checkout must be mounted there.
    assert config["workspaceFolder"] == "/home/app/project"
    assert "target=/home/app/project," in config["workspaceMount"]


def test_strip_json_comments_keeps_urls_in_strings():
    text = '{"a": "https://x.org/y", // note\n /* block */ "b": [1, 2,],}'
    assert json.loads(strip_json_comments(text)) == {"a": "https://x.org/y", "b": [1, 2]}
