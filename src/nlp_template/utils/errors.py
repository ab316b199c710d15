"""One-line errors for bad input.

A user who mistypes a column name or a path should read one line that names the problem and the fix, not a
traceback through datasets, transformers and Hydra. Code that validates input raises `UserInputError`; the entry
points catch it (also when Hydra's `instantiate` wrapped it) and print only its message.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf.errors import MissingMandatoryValue

F = TypeVar("F", bound=Callable[..., Any])


class UserInputError(ValueError):
    """Bad data, config or path supplied by the user; the message says what is wrong and how to fix it."""


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
        error = error.__cause__ or error.__context__
    return None


def exit_on_user_error(func: F) -> F:
    """Run `func`; if it fails because of the user's input, print `error: <message>` and exit with status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            message = _user_message(error)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
