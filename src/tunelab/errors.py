"""User-facing errors: one paragraph that names the file, the line and what to do; exit code 2."""


class TunelabError(Exception):
    """Bad input or a failed precondition the user can fix. The CLI prints it without a traceback."""

    exit_code = 2


class RecipeWarning(UserWarning):
    """A recipe field that the recipe's task ignores (a field of another task family). The CLI prints it as one line."""


def where(path, line=None) -> str:
    """`file.csv, line 12` — the place prefix every data error starts with."""
    return f"{path}, line {line}" if line is not None else f"{path}"
