"""The one error type the library raises for bad user input (files, labels, config fields, model dirs).

The CLI prints it without a traceback and exits with status 2. Messages name the file and line (or the
config field / directory) and say how to fix the problem.
"""

from __future__ import annotations


class RouterforgeError(Exception):
    """Bad input: a data file, a label, a config field or a model directory."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None, hint: str | None = None):
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        text = f"{where}{message}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)
        self.source, self.line, self.hint = source, line, hint
