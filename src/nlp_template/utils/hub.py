"""Loading by "Hub id or local directory", with one-line errors for the two ways it goes wrong.

Every `from_pretrained` goes through `load_or_explain`, which passes `trust_remote_code`: False unless the config
turns it on (`extras.trust_remote_code=true`), so a model or tokenizer that ships its own Python code is refused in
one line instead of run (or of `transformers` asking on the terminal).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nlp_template.utils.errors import UserInputError

_TRUST_REMOTE_CODE = {"enabled": False}


def set_trust_remote_code(enabled: bool) -> None:
    """Allow (or, the default, refuse) Hub models and tokenizers that run their own code when loaded."""
    _TRUST_REMOTE_CODE["enabled"] = bool(enabled)


def first_line(error: BaseException) -> str:
    """The first line of an error message (library errors are often paragraphs)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def resolve_name_or_path(name_or_path: str, what: str, key: str) -> str:
    """A local directory as an absolute path, a Hub id unchanged; a path-like string that does not exist fails.

    Hub ids look like `name` or `org/name`; anything starting with `.`, `/` or `~` or with more than one `/` is a path.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.is_file():
        raise UserInputError(
            f"{what} path is a file, not a directory: {name_or_path} (check {key}: give the directory that holds"
            " the files saved by save_pretrained)"
        )
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise UserInputError(f"{what} directory does not exist: {name_or_path} (check {key})")
    return name_or_path


def load_or_explain(what: str, name_or_path: str, loader: Callable[..., Any], **kwargs: Any) -> Any:
    """`loader(name_or_path, **kwargs)`, turning its failure into one line that says where it looked."""
    kwargs.setdefault("trust_remote_code", _TRUST_REMOTE_CODE["enabled"])
    try:
        return loader(name_or_path, **kwargs)
    except Exception as error:
        local = Path(name_or_path).is_dir()
        hint = "is it a Hugging Face model directory?" if local else "offline? pass a local directory instead"
        if "trust_remote_code" in str(error) or "contains custom code" in str(error):
            hint = "it ships its own Python code, which is not run unless extras.trust_remote_code=true"
        raise UserInputError(f"could not load {what} from '{name_or_path}' ({hint}): {first_line(error)}") from error
