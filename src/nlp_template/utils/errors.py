"""One-line errors for bad input.

A user who mistypes a column name or a path should read one line that names the problem and the fix, not a
traceback through datasets, transformers and Hydra. Code that validates input raises `UserInputError`; the entry
points catch it (also when Hydra's `instantiate` wrapped it) and print only its message. `HYDRA_FULL_ERROR=1` shows
the full traceback instead, as it does for Hydra's own errors.

Config errors that Hydra raises before the entry point runs (an override of a key that does not exist, a config
group option that does not exist, override syntax) are printed by Hydra itself; `one_line_config_errors` around the
`@hydra.main` function makes them one line too.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue

F = TypeVar("F", bound=Callable[..., Any])


class UserInputError(ValueError):
    """Bad data, config or path supplied by the user; the message says what is wrong and how to fix it."""


def full_error_wanted() -> bool:
    """Whether the user asked for full tracebacks (`HYDRA_FULL_ERROR=1`, as Hydra reads it)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def one_line(message: str) -> str:
    """`message` with its line breaks and runs of whitespace collapsed to single spaces."""
    return " ".join(message.split())


def listing(items: Iterable[Any], limit: int = 10) -> str:
    """`a, b, c` for an error line: the first `limit` items and how many more, so a line stays readable for any count.

    500 unknown labels would otherwise make an error line thousands of characters long.
    """
    items = list(items)
    shown = ", ".join(str(item) for item in items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _user_message(error: BaseException) -> str | None:
    """The one-line message for an error the user caused, or None for a genuine bug (keep its traceback)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UserInputError):
            return str(error)
        if isinstance(error, TypeError) and "unexpected keyword argument" in str(error):
            return f"{error}: remove that config key or check its spelling"
        if isinstance(error, MissingMandatoryValue):
            key = getattr(error, "full_key", None) or str(error)
            return f"missing required value '{key}': set it on the command line, e.g. {key}=..."
        if isinstance(error, RuntimeError) and str(error).startswith("Error(s) in loading state_dict"):
            return _state_dict_mismatch(error)
        error = error.__cause__ or error.__context__
    return None


def _state_dict_mismatch(error: RuntimeError) -> str:
    """A checkpoint whose weights do not fit the model (torch's `load_state_dict`, e.g. Lightning resuming)."""
    text = str(error)
    model = text.splitlines()[0].removeprefix("Error(s) in loading state_dict for").strip(" :")
    found = []
    for kind in ("Missing", "Unexpected"):
        listed = re.search(rf"{kind} key\(s\) in state_dict: (.*)", text)
        names = re.findall(r'"([^"]+)"', listed.group(1)) if listed else []
        if names:
            found.append(f"{len(names)} {kind.lower()} weight(s), e.g. {names[0]}")
    sizes = re.findall(r"size mismatch for ([^:]+): copying a param with shape torch.Size\((.*?)\) from checkpoint,"
                       r" the shape in current model is torch.Size\((.*?)\)", text)  # fmt: skip
    if sizes:
        name, saved, current = sizes[0]
        found.append(f"{len(sizes)} of another shape, e.g. {name}: {saved} in the checkpoint, {current} here")
    return (
        f"the checkpoint's weights do not fit this {model} ({'; '.join(found) or one_line(text)[:200]}): it was"
        " trained for another task or with another model or label set. Give a checkpoint of this experiment"
        " (ckpt_path=last finds the newest)"
    )


def exit_on_user_error(func: F) -> F:
    """Run `func`; if it fails because of the user's input, print `error: <message>` and exit with status 1.

    With `HYDRA_FULL_ERROR=1` the error propagates (Hydra then prints the full traceback).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            message = _user_message(error)
            if message is None or full_error_wanted():
                raise
            print(f"error: {one_line(message)}", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------- Hydra's own config errors
def config_error_message(error: BaseException) -> str:
    """One line for an error Hydra raises while composing the config (bad override key, option or syntax).

    Hydra's message spans lines ("Could not override 'x'." / "To append to your config use +x=..." / the OmegaConf
    cause / a list of available options / the config search path); this keeps what helps and adds the closest
    existing key or option ("did you mean ...?").
    """
    sentences: list[str] = []
    options: list[str] = []
    group = None
    for line in str(error).splitlines():
        if line.startswith("Config search path"):
            break
        if group is not None and line[:1].isspace():
            options.append(line.strip())
        elif line.strip():
            listing = re.match(r"Available options in '([^']*)':$", line.strip())
            group = listing.group(1) if listing else None
            if not listing:
                sentences.append(re.sub(r"^In '[^']*': ", "", line.strip()).rstrip("."))
    cause = error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and getattr(cause, "parent_node", None) is not None:
        key = str(getattr(cause, "key", "") or "")
        parent = str(getattr(cause, "full_key", "") or key).rpartition(".")[0]
        existing = [str(name) for name in cause.parent_node]
        close = _closest(key, existing)
        hint = f" (did you mean {parent + '.' if parent else ''}{close}?)" if close else ""
        sentences.insert(1, f"{parent or 'the config'} has no key '{key}'{hint}")
    elif isinstance(cause, Exception) and str(cause).strip():
        sentences.append(str(cause).strip().splitlines()[0])
    if group is not None and options:
        missing = re.search(r"Could not find '(?:[^']*/)?([^'/]*)'", sentences[0]) if sentences else None
        close = _closest(missing.group(1), options) if missing else None
        if close:
            sentences[0] += f" (did you mean {group}={close}?)"
        sentences.append(f"available options in '{group}': {', '.join(options)}")
    sentences = [sentences[0], *(s[:1].lower() + s[1:] for s in sentences[1:])] if sentences else []
    return one_line("; ".join(sentences)) or type(error).__name__


def _closest(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


@contextmanager
def _compact_hydra_reports() -> Iterator[None]:
    """Make Hydra report its config errors as `error: <one line>` while the block runs.

    Hydra has no hook for this: its `_run_hydra` reports through the module function `run_and_report` (a private
    API, Hydra 1.3), replaced here for the duration of the call. Without it, Hydra's own report is kept.
    """
    import hydra._internal.utils as hydra_utils
    from hydra.errors import ConfigCompositionException, OverrideParseException

    original = getattr(hydra_utils, "run_and_report", None)
    if original is None:
        yield
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            try:
                return func()
            except (ConfigCompositionException, OverrideParseException) as error:
                if full_error_wanted():
                    raise
                print(f"error: {config_error_message(error)}", file=sys.stderr)
                sys.exit(1)

        return original(guarded)

    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def one_line_config_errors(main: F) -> F:
    """Wrap a `@hydra.main` function so that config composition errors print `error: <one line>` and exit 1.

    Put it above `@hydra.main(...)`: Hydra composes the config (and fails on a bad override) before the function
    it decorates runs, where `exit_on_user_error` cannot see it.
    """

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _compact_hydra_reports():
            return main(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
