"""What every command shares at the terminal: its exit codes and its progress bar."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "counted", "progress_bar"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2  # all valid / some record or input invalid / usage or configuration


def counted(count: int, noun: str) -> str:
    """``1 file``, ``2 files``; ``noun`` as the singular, its plural with an s."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class _NoBar:
    """The progress bar where standard error is no terminal: nothing shown, and rich not loaded."""

    disable = True

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *_args: Any, **_kwargs: Any) -> int:
        return 0

    def update(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def progress_bar() -> Progress:
    """A progress bar on standard error, shown only when that is a terminal (never in pipes or logs)."""
    if not sys.stderr.isatty():
        return _NoBar()  # type: ignore[return-value]  # the part of Progress the commands use
    from rich.console import Console  # noqa: PLC0415 - only for a terminal
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
