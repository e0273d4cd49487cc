"""The worker processes of an import or a folder de-identification, started early.

Standard library only (and :mod:`rpacs.errors`), so that a command can fork its workers
before it has loaded anything heavy. The first worker then imports the worker side —
pydicom, numpy, the de-identification engine (:mod:`rpacs.ingest.worker`) — while the
parent imports its own — SQLAlchemy, the models — opens the index and looks up the
project: on two cores the two start-ups run side by side instead of one after the other,
and the parent never loads pydicom at all. Once its imports are done, the first worker
forks the others, which so inherit them: the worker side is imported once however many
workers there are, as when the parent imported everything before forking.

A task is the run's pickled :class:`~rpacs.ingest.plan.WorkPlan` and a chunk of sources; a
worker makes its :class:`~rpacs.ingest.worker.Worker` once per distinct plan and keeps it.
Results come back in completion order. A worker that dies (killed, out of memory) ends the
run with :class:`~rpacs.errors.WorkerError` rather than leaving the parent waiting for it,
and leaving the pool — at the end, on an error or on Ctrl-C — ends every worker: they form
one process group, ended as one.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import importlib
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
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
#: Seconds the workers get to end after their pipes close, and after SIGTERM, before SIGKILL.
EXIT_SECONDS = 5.0

_Task = Callable[..., Any]


class _Member:
    """One worker process as the parent sees it: its end of the worker's pipe."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        #: The worker's process ID, from its first message (it is sent once it is ready).
        self.pid: int | None = None
        #: Tasks sent and not yet answered.
        self.in_flight = 0


class WorkerPool:
    """``size`` worker processes that de-identify chunks of sources.

    Use as a context manager: entering starts the workers (none when ``size`` is 1: the
    caller then works in its own process), leaving ends them. Several runs may use one
    pool in turn; the tasks carry their plan, so a run need not be known at the start.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        #: The first worker: the parent's child, and leader of the workers' process group.
        self._leader: BaseProcess | None = None
        self._members: list[_Member] = []
        #: The thread that talks to the workers during a run.
        self._feeder: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._leader is not None

    @property
    def pids(self) -> list[int]:
        """The workers' process IDs, once they are ready (waits for that); empty when the
        pool is not started."""
        if not self.started:
            return []
        self._ready()
        return [m.pid for m in self._members if m.pid is not None]

    def start(self) -> WorkerPool:
        """Fork the first worker, which imports the worker side and then forks the others.

        Fork, not spawn: a forked worker starts in milliseconds with this interpreter's
        state, and only the worker side's imports are its own to do.
        """
        if self.started or self.size <= 1:
            return self
        context = multiprocessing.get_context("fork")
        pipes = [context.Pipe() for _ in range(self.size)]
        parent_ends = [parent_end for parent_end, _ in pipes]
        child_ends = [child_end for _, child_end in pipes]
        leader = context.Process(target=_lead, args=(parent_ends, child_ends),
                                 name="rpacs-worker", daemon=True)
        try:
            leader.start()
        except BaseException:
            for end in (*parent_ends, *child_ends):
                end.close()
            raise
        self._leader = leader
        self._members = [_Member(end) for end in parent_ends]
        # Its own process group, so that ending it ends the workers it forks; set here as
        # well as there, so that it is set whichever process runs first (an error: it has
        # done so itself, or is already gone, which the first run will tell).
        with contextlib.suppress(OSError):
            os.setpgid(leader.pid, leader.pid)  # type: ignore[arg-type]
        for end in child_ends:
            # Only the workers keep their ends: a pipe then reads EOF as soon as either side
            # is gone (a worker's death here, the parent's there).
            end.close()
        return self

    def run(self, plan: object, chunks: Iterable[list[Any]]) -> Iterator[list[Any]]:
        """The outcomes of each chunk of sources worked on under ``plan``, in completion
        order. A worker's failure or death raises here; leaving the iteration early ends
        the workers (their unanswered tasks would otherwise answer the next run).

        A thread of this process keeps the workers fed and takes in their replies as they
        come, as the caller handles earlier ones: an import's caller spends long moments
        committing batches to the index, and workers waiting meanwhile to hand over a
        reply (the pipes hold about two) would stand idle.
        """
        if not self.started:
            raise RuntimeError("the worker pool is not started")
        completed = False
        try:
            self._ready()
            payload = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
            arrivals: queue.SimpleQueue[bytes | _Signal | BaseException] = queue.SimpleQueue()
            self._feeder = threading.Thread(
                target=_feed, args=(self._members, self._sentinel(), payload, iter(chunks),
                                    arrivals), name="rpacs-worker-feeder", daemon=True)
            self._feeder.start()
            while (arrival := arrivals.get()) is not _Signal.DONE:
                if arrival is _Signal.LOST:
                    raise self._lost()
                if isinstance(arrival, BaseException):
                    raise arrival  # a fault of the feeder thread itself
                answered, result = pickle.loads(arrival)
                if not answered:
                    raise (result if isinstance(result, BaseException)
                           else WorkerError(result))
                yield result
            self._feeder.join()
            self._feeder = None
            completed = True
        finally:
            if not completed:
                self.terminate()

    def _sentinel(self) -> Any:
        """Ready when every worker has ended: each holds the first one's sentinel pipe."""
        assert self._leader is not None
        return self._leader.sentinel

    def _ready(self) -> None:
        """Wait for every worker's first message (its process ID): its imports are done."""
        while any(m.pid is None for m in self._members):
            by_handle: dict[Any, _Member | None] = {self._sentinel(): None}
            by_handle.update({m.connection: m for m in self._members if m.pid is None})
            for handle in wait(list(by_handle)):
                member = by_handle[handle]
                if member is None:
                    raise self._lost()
                try:
                    member.pid = member.connection.recv()
                except (EOFError, OSError) as exc:
                    raise self._lost() from exc

    def _lost(self) -> WorkerError:
        """The error of a worker's unexpected end; the pool is ended with it."""
        self.terminate()
        return WorkerError("a worker process ended unexpectedly; the run stopped and can be "
                           "started again")

    def close(self) -> None:
        """End the workers once they are idle: each reads the end of its pipe and exits."""
        for member in self._members:
            member.connection.close()
        if self._leader is not None:
            wait([self._sentinel()], EXIT_SECONDS)
        self.terminate()

    def terminate(self) -> None:
        """End the workers now, whatever they are doing: their process group gets SIGTERM
        (SIGKILL if they have not all ended after :data:`EXIT_SECONDS`)."""
        leader, self._leader = self._leader, None
        members, self._members = self._members, []
        feeder, self._feeder = self._feeder, None
        if leader is not None:
            # Signalled before the first worker is reaped: until then its process ID, which
            # is the group's, cannot name another process (group).
            _signal_group(leader, signal.SIGTERM)
            if not wait([leader.sentinel], EXIT_SECONDS):
                _signal_group(leader, signal.SIGKILL)
        if feeder is not None:
            # With the workers gone its pipes read EOF, and it ends; their ends are closed
            # only then, never under a thread still waiting on them.
            feeder.join()
        for member in members:
            member.connection.close()
        if leader is not None:
            leader.join()

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.terminate()


class _Signal(enum.Enum):
    """What the feeder thread says besides the workers' replies."""

    DONE = "every task answered"
    LOST = "a worker ended unexpectedly"


def _feed(members: list[_Member], sentinel: Any, payload: bytes, chunks: Iterator[list[Any]],
          arrivals: queue.SimpleQueue[bytes | _Signal | BaseException]) -> None:
    """The feeder thread of a run: send each worker up to :data:`TASKS_AHEAD` tasks, pass
    every reply on (still pickled) as it arrives, and DONE after the last; LOST as soon as
    a worker's pipe ends (or the sentinel all workers share is ready)."""
    queued: list[bytes] = []  # the next task, pickled, while it waits for a worker

    def feed(member: _Member) -> bool:
        """Send ``member`` the next task if it may have one now; whether it was sent."""
        if member.in_flight >= TASKS_AHEAD:
            return False
        if not queued:
            chunk = next(chunks, None)
            if chunk is None:
                return False
            queued.append(pickle.dumps((payload, chunk), protocol=pickle.HIGHEST_PROTOCOL))
        if member.in_flight and len(queued[0]) > QUEUED_TASK_BYTES:
            return False
        member.connection.send_bytes(queued.pop())
        member.in_flight += 1
        return True

    try:
        for _ in range(TASKS_AHEAD):
            for member in members:
                feed(member)
        while any(m.in_flight for m in members):
            by_handle: dict[Any, _Member | None] = {sentinel: None}
            by_handle.update({m.connection: m for m in members})
            for handle in wait(list(by_handle)):
                member = by_handle[handle]
                if member is None:
                    raise EOFError
                arrivals.put(member.connection.recv_bytes())
                member.in_flight -= 1
                while feed(member):  # back to TASKS_AHEAD, as far as tasks and sizes allow
                    pass
    except (EOFError, OSError):
        arrivals.put(_Signal.LOST)
    except BaseException as exc:
        arrivals.put(exc)
    else:
        arrivals.put(_Signal.DONE)


def _signal_group(leader: BaseProcess, number: signal.Signals) -> None:
    """Signal the workers' process group, and the first worker itself in case it had not
    yet made that group."""
    assert leader.pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, number)
    if leader.exitcode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(leader.pid, number)


def _lead(parent_ends: list[Connection], child_ends: list[Connection]) -> None:
    """The first worker: import the worker side, fork the other workers, then work too."""
    with contextlib.suppress(OSError):  # as the parent does, whichever comes first
        os.setpgid(0, 0)
    # Ctrl-C reaches every process of the terminal's foreground group: the parent handles
    # it and ends the workers, which must not each print a traceback meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in parent_ends:
        # The parent's ends, inherited by the fork: held open here, they would keep the
        # pipes from reading EOF when the parent is gone.
        end.close()
    # numpy's OpenBLAS would start a thread per core in every worker, each spinning for
    # work that never comes (the workers do no linear algebra): CPU the other workers need.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    work = getattr(importlib.import_module(WORKER_MODULE), TASK_FUNCTION)
    # What the imports made (pydicom's dictionary, the standard's tables) lives as long as
    # the workers: frozen, the collector never walks it again, and the workers forked
    # below share its pages instead of each copying them as the collector touches them.
    # Collection resumes here if the command had paused it for its start-up, which the
    # fork inherited (see rpacs.cli.context.own_process).
    gc.freeze()
    gc.enable()
    others: list[int] = []
    for number in range(1, len(child_ends)):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for other, end in enumerate(child_ends):
                    if other != number:
                        end.close()
                _serve(child_ends[number], work)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)  # never back into the first worker's code
        others.append(pid)
        child_ends[number].close()
    _serve(child_ends[0], work)
    # Waited for, not left to the kernel: their CPU time then counts in this process's
    # children's, and so in the command's (what `time` and the benchmark report).
    for pid in others:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _serve(connection: Connection, work: _Task) -> None:
    """A worker: say it is ready (its process ID), then answer tasks until the pipe ends."""
    try:
        connection.send(os.getpid())
    except OSError:
        return
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
            copy = None
        if isinstance(copy, RpacsError) and str(copy) == str(exc):
            return copy
        return f"a worker process failed: {type(exc).__name__}: {exc}"
    return f"a worker process failed ({type(exc).__name__})"


__all__ = ["WorkerPool"]
