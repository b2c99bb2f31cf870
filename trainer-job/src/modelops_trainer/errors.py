"""The one exception the trainer raises for bad input, and help for writing its message."""

import difflib
from collections.abc import Iterable


class TrainingError(Exception):
    """Bad training input. The message is one line that says what is wrong and how to fix it;
    the CLI prints it as `error: <message>` and writes it to the termination message."""


def did_you_mean(given: str, allowed: Iterable[str]) -> str:
    """`did you mean 'x'? ` for the allowed name closest to a misspelt one, else nothing."""
    by_folded = {name.casefold(): name for name in allowed}
    close = difflib.get_close_matches(given.casefold(), by_folded, n=1)
    return f"did you mean {by_folded[close[0]]!r}? " if close else ""
