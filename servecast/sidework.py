"""Work beside the CLI's main thread, with values and errors brought back: a forked child (the plan's
second core: `alongside`, for a multi-backend screen's other backends and the replays) and a thread (files
written while the artifacts are)."""
from __future__ import annotations


class Forked:
    """fn() in a forked child (Linux) while this process goes on; result() returns its value.
    Forked after the search, before any thread is started here and before anything is printed. A
    ServecastError in the child is re-raised by result(); any other failure prints its traceback
    in the child and fails result() too. Without os.fork, fn() runs here, at once."""

    def __init__(self, fn):
        import os

        self.pid, self.payload = None, None
        if not hasattr(os, "fork"):
            self.payload = _call(fn)
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:   # the child: never returns into the CLI
            os.close(r)
            code = 1
            try:
                payload = _call(fn)
                try:
                    with os.fdopen(w, "wb") as fh:
                        _pickle().dump(payload, fh, protocol=_pickle().HIGHEST_PROTOCOL)
                except BrokenPipeError:   # the parent failed and stopped listening: it reports that
                    pass
                code = 0
            finally:
                if code:
                    import traceback

                    traceback.print_exc()
                os._exit(code)
        os.close(w)
        self.pid, self.fd = pid, r

    def discard(self) -> None:
        """Wait for the child without reading its outcome (the caller is already failing)."""
        import os

        if self.pid is not None:
            os.close(self.fd)
            os.waitpid(self.pid, 0)
            self.pid = None

    def result(self):
        import os

        if self.pid is not None:
            with os.fdopen(self.fd, "rb") as fh:
                data = fh.read()
            code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            self.pid = None
            if code != 0 or not data:
                raise RuntimeError(f"the forked plan worker failed (exit status {code}); its traceback is above")
            self.payload = _pickle().loads(data)
        ok, value = self.payload
        if not ok:
            raise value
        return value


def _pickle():
    import pickle

    return pickle


def _call(fn) -> tuple[bool, object]:
    from perfdb.errors import ServecastError

    try:
        return True, fn()
    except ServecastError as exc:   # re-raised by Forked.result in the parent
        return False, exc


def alongside(fn, here):
    """(fn(), here()) with fn in a forked child (`Forked`) while this process runs here(); when here() fails
    the child is waited for and its outcome dropped."""
    child = Forked(fn)
    try:
        mine = here()
    except BaseException:
        child.discard()
        raise
    return child.result(), mine


def in_turn(fn, here):
    """(fn(), here()), both in this process: `alongside` without the fork."""
    return fn(), here()


class Background:
    """fn(*args) on a thread; result() waits and re-raises its exception in the caller."""

    def __init__(self, fn, *args):
        import threading

        self.error: BaseException | None = None

        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by result(), not swallowed
                self.error = exc

        self.thread = threading.Thread(target=run, name="servecast-points-files")
        self.thread.start()

    def result(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error
