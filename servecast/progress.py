"""The transient progress bar the CLI shows while the simulator replays measured runs (the slow base of
`calibrate fit / validate --base simulate` and `estimate --from-runs --base simulate`)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def simulating_runs(active: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A bar on stderr fed by progress(done, total) calls while `active`; else no callback."""
    if not active:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("simulating runs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("runs", total=None)
        yield lambda done, total: bar.update(task, total=total, completed=done)
