"""What every command shares at the terminal: its exit codes and its progress bar."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "progress_bar"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2  # all valid / some record or input invalid / usage or configuration


def progress_bar() -> Progress:
    """A progress bar on standard error, shown only when that is a terminal (never in pipes or logs)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty())
