"""The worker processes of an import or a folder de-identification, started early.

Standard library only (and :mod:`rpacs.errors`), so that a command can fork its workers
before it has loaded anything heavy: each worker then imports the worker side — pydicom,
numpy, the de-identification engine (:mod:`rpacs.ingest.worker`) — while the parent imports
its own — SQLAlchemy, the models — opens the index and looks up the project. On two cores
the two start-ups run side by side instead of one after the other, and the parent never
loads pydicom at all.

A task is the run's pickled :class:`~rpacs.ingest.plan.WorkPlan` and a chunk of sources; a
worker makes its :class:`~rpacs.ingest.worker.Worker` once per distinct plan and keeps it.
Results come back in completion order. A worker that dies (killed, out of memory) ends the
run with :class:`~rpacs.errors.WorkerError` rather than leaving the parent waiting for it,
and leaving the pool — at the end, on an error or on Ctrl-C — ends every worker.
"""

from __future__ import annotations

import importlib
import multiprocessing
import pickle
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from ..errors import RpacsError, WorkerError

#: What each worker process imports as it starts (its whole start-up), and the function of
#: it that works on a task: ``process_task(plan bytes, sources) -> outcomes``.
WORKER_MODULE = "rpacs.ingest.worker"
TASK_FUNCTION = "process_task"
#: Tasks sent to a worker ahead of its replies: it starts the next one while the parent
#: takes in the last one's outcomes (or commits a batch of them to the index).
TASKS_AHEAD = 2
#: A task larger than this waits for its worker to be idle before it is sent. A smaller one
#: fits into the socket's buffer (about 200 kB on Linux) beside those already queued, so the
#: parent never blocks sending to a worker that is itself blocked sending a reply.
QUEUED_TASK_BYTES = 32 * 1024
#: Seconds a worker gets to end after its pipe closes, and after SIGTERM, before SIGKILL.
EXIT_SECONDS = 5.0


@dataclass
class _Member:
    """One worker process and the parent's end of its pipe."""

    process: BaseProcess
    connection: Connection
    #: Tasks sent and not yet answered.
    in_flight: int = 0


class WorkerPool:
    """``size`` forked worker processes that de-identify chunks of sources.

    Use as a context manager: entering starts the workers (none when ``size`` is 1: the
    caller then works in its own process), leaving ends them. Several runs may use one
    pool in turn; the tasks carry their plan, so a run need not be known at the start.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._members: list[_Member] = []

    @property
    def started(self) -> bool:
        return bool(self._members)

    @property
    def pids(self) -> list[int]:
        """The worker processes' IDs (empty before the start and after the end)."""
        return [m.process.pid for m in self._members if m.process.pid is not None]

    def start(self) -> WorkerPool:
        """Fork the workers; each starts importing the worker side at once.

        Fork, not spawn: a forked worker starts in milliseconds with this interpreter's
        state, and only the worker side's imports are its own to do.
        """
        if self.started or self.size <= 1:
            return self
        context = multiprocessing.get_context("fork")
        parent_ends: list[Connection] = []
        try:
            for number in range(self.size):
                parent_end, child_end = context.Pipe()
                process = context.Process(
                    target=_serve, args=(child_end, (*parent_ends, parent_end)),
                    name=f"rpacs-worker-{number + 1}", daemon=True)
                process.start()
                # Only the worker keeps its end: the pipe then reads EOF as soon as either
                # side is gone (a worker's death here, the parent's there).
                child_end.close()
                parent_ends.append(parent_end)
                self._members.append(_Member(process, parent_end))
        except BaseException:
            self.terminate()
            raise
        return self

    def run(self, plan: object, chunks: Iterable[list[Any]]) -> Iterator[list[Any]]:
        """The outcomes of each chunk of sources worked on under ``plan``, in completion
        order. A worker's failure or death raises here; leaving the iteration early ends
        the workers (their unanswered tasks would otherwise answer the next run)."""
        if not self.started:
            raise RuntimeError("the worker pool is not started")
        payload = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
        todo = iter(chunks)
        queued: list[bytes] = []  # the next task, pickled, when it waits for an idle worker

        def feed(member: _Member) -> None:
            """Send ``member`` its next task if it has room for one."""
            if not queued:
                chunk = next(todo, None)
                if chunk is None:
                    return
                queued.append(pickle.dumps((payload, chunk), protocol=pickle.HIGHEST_PROTOCOL))
            if member.in_flight and len(queued[0]) > QUEUED_TASK_BYTES:
                return
            try:
                member.connection.send_bytes(queued.pop())
            except OSError as exc:  # the worker is gone; its sentinel tells how
                raise self._lost(member) from exc
            member.in_flight += 1

        completed = False
        try:
            for _ in range(TASKS_AHEAD):
                for member in self._members:
                    if member.in_flight < TASKS_AHEAD:
                        feed(member)
            while any(m.in_flight for m in self._members):
                yield from self._replies(feed)
            completed = True
        finally:
            if not completed:
                self.terminate()

    def _replies(self, feed: Callable[[_Member], None]) -> Iterator[list[Any]]:
        """The replies ready now (waiting for at least one), each worker fed again as it
        answers. A worker's sentinel among the ready means it died: no reply will come."""
        by_handle: dict[Any, _Member] = {}
        for member in self._members:
            by_handle[member.process.sentinel] = member
            if member.in_flight:
                by_handle[member.connection] = member
        for handle in wait(list(by_handle)):
            member = by_handle[handle]
            if handle is not member.connection:
                raise self._lost(member)
            try:
                answered, result = member.connection.recv()
            except (EOFError, OSError) as exc:
                raise self._lost(member) from exc
            member.in_flight -= 1
            if not answered:
                raise result if isinstance(result, BaseException) else WorkerError(result)
            feed(member)
            yield result

    def _lost(self, member: _Member) -> WorkerError:
        member.process.join(EXIT_SECONDS)
        code = member.process.exitcode
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exit code {code}" if code is not None else "no longer answering")
        return WorkerError(f"a worker process ended unexpectedly ({how}); the run stopped "
                           "and can be started again")

    def close(self) -> None:
        """End the workers once they are idle: each reads the end of its pipe and exits."""
        for member in self._members:
            member.connection.close()
        for member in self._members:
            member.process.join(EXIT_SECONDS)
        self.terminate()

    def terminate(self) -> None:
        """End the workers now, whatever they are doing (SIGTERM, then SIGKILL)."""
        members, self._members = self._members, []
        for member in members:
            if member.process.is_alive():
                member.process.terminate()
        for member in members:
            member.process.join(EXIT_SECONDS)
            if member.process.is_alive():
                member.process.kill()
                member.process.join()
            member.connection.close()

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.terminate()


def _serve(connection: Connection, parent_ends: tuple[Connection, ...]) -> None:
    """A worker process: import the worker side, then answer tasks until the pipe ends."""
    # Ctrl-C reaches every process of the terminal's foreground group: the parent handles
    # it and ends the workers, which must not each print a traceback meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in parent_ends:
        # The parent's ends inherited by the fork: held open here, they would keep this
        # pipe (and those of earlier workers) from reading EOF when the parent is gone.
        end.close()
    work = getattr(importlib.import_module(WORKER_MODULE), TASK_FUNCTION)
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return  # the pool was closed, or the parent is gone: nothing more to do
        try:
            reply = pickle.dumps((True, work(*task)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # the parent decides; this process stays usable
            reply = pickle.dumps((False, _portable(exc)), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            connection.send_bytes(reply)
        except OSError:
            return


def _portable(exc: BaseException) -> BaseException | str:
    """What of a task's exception may cross to the parent: an RpacsError itself when it
    survives pickling (its message was written to hold no data values), otherwise a
    description naming only its type — any other message might quote a value read from
    a file."""
    if isinstance(exc, RpacsError):
        try:
            copy = pickle.loads(pickle.dumps(exc))
        except Exception:
            return f"a worker process failed: {type(exc).__name__}: {exc}"
        if isinstance(copy, RpacsError) and str(copy) == str(exc):
            return copy
        return f"a worker process failed: {type(exc).__name__}: {exc}"
    return f"a worker process failed ({type(exc).__name__})"


__all__ = ["WorkerPool"]
