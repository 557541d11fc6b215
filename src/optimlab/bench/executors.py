"""Where a sweep's groups train: in this process, one after another (:class:`LocalExecutor`,
the default), or as tasks on a Ray cluster (:class:`RayExecutor`).

A group is one optimizer's unfinished runs, trained as one batched population (or one by
one). The sweep (:func:`~optimlab.bench.sweep.run_sweep`) hands its groups to an executor
and stores each group's results as it gets them back; the executor only trains. So the
store is written by the sweep's process alone (the driver), whatever the executor, and its
resume and locking rules hold unchanged:

* each group's runs are marked ``running`` when the group is handed over, and end in the
  store when its results come back, in the order groups finish;
* a group whose Ray worker dies (killed, out of memory, its node lost) is run again from
  the start on another worker, up to ``max_retries`` times; the results of an attempt
  that died never reach the driver, so no run is stored twice;
* a group that still cannot finish leaves its runs ``running`` and the sweep raises
  :class:`GroupsLost` at the end, after storing every group that did finish:
  ``--resume`` trains the rest; so does a group whose optimizer the worker does not know
  (a plugin the cluster's nodes lack: :func:`unknown_optimizers`);
* a training error (a broken member) is not the worker's fault: the group's runs are
  stored as ``failed`` with the error, as in a local sweep; so is an error Ray reports for
  the group's task itself (its code cannot be loaded on the worker: a ``RayTaskError``),
  which a retry or ``--resume`` would only meet again (:func:`ray_error_outcome`).

Ray is an optional dependency (``pip install 'optimlab[ray]'``); nothing imports it until a
:class:`RayExecutor` starts.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._env import flag
from .._table import describe_error
from ..optim.base import check_int

__all__ = ["EXECUTORS", "Call", "Outcome", "LocalExecutor", "RayExecutor", "GroupsLost",
           "make_executor", "require_ray", "keep_on_loopback", "ray_installed",
           "ray_error_outcome", "unknown_optimizers", "check_executor"]


def check_executor(executor) -> None:
    """TypeError unless ``executor`` is None (train here) or an executor: an object whose
    ``map`` trains :class:`Call` s (:class:`LocalExecutor`, :class:`RayExecutor`). Checked
    before a sweep is stored: ``executor=5`` raised an ``AttributeError`` after its runs
    were added."""
    if executor is not None and not callable(getattr(executor, "map", None)):
        raise TypeError(f"executor must be an executor of optimlab.bench.executors "
                        f"(LocalExecutor, RayExecutor) or None, got {type(executor).__name__}")

#: the executors ``optimlab bench --executor`` takes
EXECUTORS = ("local", "ray")


class GroupsLost(RuntimeError):
    """Some groups could not be trained (their workers kept dying, or did not know their
    optimizer: a plugin the cluster lacks); their runs are left
    ``running`` in the store, for ``--resume``."""


@dataclass(frozen=True)
class Call:
    """One group's training: ``fn(*args, progress=...)``; ``ticks`` is the training steps
    it takes (how far a progress bar moves when a remote group ends)."""

    fn: Callable
    args: tuple
    ticks: int = 0


@dataclass(frozen=True)
class Outcome:
    """What came back from a group: ``"done"`` with ``value`` (the training's return
    value), ``"error"`` with ``message`` (the training raised: a broken member), or
    ``"lost"`` with ``message`` (its workers died more often than the retries allow)."""

    kind: str
    value: Any = None
    message: str | None = None


def run_call(fn: Callable, args: tuple, progress=None) -> Outcome:
    """``fn(*args, progress=progress)`` as an :class:`Outcome`: an exception becomes an
    ``"error"`` with its one-line description, so that a broken member is stored as failed
    rather than retried."""
    try:
        return Outcome("done", fn(*args, progress=progress))
    except Exception as err:
        return Outcome("error", message=describe_error(err))


class LocalExecutor:
    """Train the groups here, one after another, in the order given (the default)."""

    name = "local"

    def map(self, calls: Sequence[Call], started: Callable[[int], None],
            progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index, outcome)`` per call, calling ``started(index)`` just before it
        trains; ``progress`` ticks once per training step."""
        for index, call in enumerate(calls):
            started(index)
            yield index, run_call(call.fn, call.args, progress)

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Train the groups as Ray tasks, all submitted at once, each on one CPU of the cluster.

    Args:
        address: the cluster's address (``host:port`` of its head, or ``"auto"``); None
            takes ``$RAY_ADDRESS`` where it is set, as ``ray.init`` would (checked and
            named as an address given), else starts a Ray instance on this machine for the
            sweep and stops it at the end.
        max_retries: how many times a group whose worker died is run again.
        num_cpus: CPUs each group's task asks for (and so its torch threads).

    Raises:
        RuntimeError: Ray is not installed (one line: what to install), or the cluster at
            ``address`` cannot be reached.
    """

    name = "ray"

    def __init__(self, address: str | None = None, max_retries: int = 3,
                 num_cpus: float = 1) -> None:
        check_int("max_retries", max_retries, 0)
        if not num_cpus > 0:
            raise ValueError(f"num_cpus must be > 0, got {num_cpus!r}")
        # ray.init reads $RAY_ADDRESS itself: unchecked, one where nothing listens hung it
        # retrying, and one on loopback dialled another interface
        address = ray_address(address)
        keep_on_loopback(address)  # before Ray is imported (require_ray), or it is too late
        self.ray = require_ray()
        self.address, self.max_retries, self.num_cpus = address, max_retries, num_cpus
        self._started = False
        ray = self.ray
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False,
                         **({} if address else {"include_dashboard": False}))
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise RuntimeError(f"cannot connect to {where}: {' '.join(str(err).split())}"
                                   ) from None
            self._started = True
        self._remote = ray.remote(_remote_call).options(
            num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=False,
            name="optimlab-group")

    def map(self, calls: Sequence[Call], started: Callable[[int], None],
            progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, Outcome]]:
        """Submit every call, mark each started, then yield ``(index, outcome)`` as groups
        finish; ``progress`` moves by a group's ``ticks`` when it ends."""
        ray = self.ray
        # an argument every group shares (the task and its data, the training settings)
        # goes to the cluster's object store once, not once per group
        uses = Counter(id(a) for call in calls for a in call.args)
        stored: dict[int, Any] = {}

        def shared(arg):
            if uses[id(arg)] < 2:
                return arg
            if id(arg) not in stored:
                stored[id(arg)] = ray.put(arg)
            return stored[id(arg)]

        refs = {}
        for index, call in enumerate(calls):
            started(index)
            refs[self._remote.remote(call.fn, *map(shared, call.args))] = (index, call)
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            index, call = refs[done[0]]
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as err:
                outcome = ray_error_outcome(err)
            yield index, outcome  # stored first: a progress callback that raises loses nothing
            if progress is not None and call.ticks:
                progress(call.ticks)

    def close(self) -> None:
        """Disconnect from the cluster (and stop the Ray instance this executor started)."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


#: seconds to wait for a cluster's head to accept a connection before saying it cannot be
#: reached (Ray's own client retries for minutes, deaf to SIGTERM)
CONNECT_TIMEOUT = 5.0


def _is_loopback(address: str) -> bool:
    """Whether a Ray ``address`` (``host:port``, ``ray://host:port``) names this machine's
    loopback. There :class:`RayExecutor` keeps Ray's drivers on it
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, unless set, before Ray is imported, which reads
    it then): otherwise they dial the machine's network address instead, where a cluster
    started on 127.0.0.1 does not listen, and the sweep hangs. (Ray imported earlier in the
    process without the variable keeps dialling the network address.)"""
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def ray_address(address: str | None) -> str | None:
    """The Ray cluster a sweep goes to: ``address``, else ``$RAY_ADDRESS`` where it is set
    (``ray.init`` reads it too), else None (a Ray instance on this machine)."""
    return address or os.environ.get("RAY_ADDRESS", "").strip() or None


def keep_on_loopback(address: str | None) -> None:
    """Set ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (unless set) where ``address`` is a
    loopback one (:func:`_is_loopback`). Ray reads the variable once, when it is imported:
    call this before anything imports Ray (:func:`require_ray` and :class:`RayExecutor` do)."""
    if address and _is_loopback(address):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def ray_installed() -> bool:
    """Whether Ray can be imported, found without importing it (an import now would read
    Ray's environment before :func:`keep_on_loopback` could set it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


#: the names of Ray's errors that mean a group's worker was lost (the worker or its node
#: died, it ran out of memory, an object it needed was lost): run again, then left for
#: ``--resume``; any other error of Ray's is the group's own, stored as its runs' failure
LOST_ERRORS = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ObjectLostError",
               "LocalRayletDiedError", "RayActorError")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def ray_error_outcome(err: BaseException) -> Outcome:
    """The :class:`Outcome` of a group whose ``ray.get`` raised ``err`` (a Ray error):
    ``"lost"`` where its workers died (:data:`LOST_ERRORS`, after Ray's retries), else
    ``"error"`` with a one-line message, as a group that raises here is stored: the error
    the task raised (a ``RayTaskError``'s cause, unwrapped from a ``RaySystemError``),
    without Ray's colour codes, process title and traceback. ``--resume`` cannot mend a
    group that fails the same way each time."""
    import ray.exceptions as rex

    lost = tuple(getattr(rex, name) for name in LOST_ERRORS if hasattr(rex, name))
    cause = err
    for _ in range(4):  # a task's error, a system error's own exception
        if isinstance(cause, rex.RayTaskError) and isinstance(cause.cause, BaseException):
            cause = cause.cause
        elif isinstance(cause, rex.RaySystemError) and isinstance(
                getattr(cause, "client_exc", None), BaseException):
            cause = cause.client_exc
        else:
            break
    if isinstance(err, lost) or isinstance(cause, lost):
        return Outcome("lost", message=f"{type(cause).__name__}: {_one_line(str(cause))}")
    if isinstance(cause, rex.RayTaskError):  # no cause to show: the task's name
        text = f"RayTaskError: {cause.function_name} failed"
    else:
        text = describe_error(cause)
    return Outcome("error", message=_one_line(text))


def _one_line(text: str) -> str:
    """``text``'s first line that says something, without ANSI codes, at most 300 characters."""
    lines = [" ".join(line.split()) for line in _ANSI.sub("", text).splitlines()]
    line = next((line for line in lines if line), "")
    return line if len(line) <= 300 else line[:299] + "…"


#: what an HTTP/2 client sends first (its preface, then an empty SETTINGS frame): a Ray
#: head (its GCS) and a Ray client server (``ray://``) speak gRPC, which is HTTP/2, and
#: answer with a SETTINGS frame of their own
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(sock: socket.socket, deadline: float) -> bool | None:
    """Whether the server on ``sock`` answers an HTTP/2 preface with a SETTINGS frame (gRPC,
    as Ray's head and client server do): True, False (it answered something else or closed),
    None (it said nothing before ``deadline``, a :func:`time.monotonic` time)."""
    sock.sendall(_HTTP2_PREFACE)
    head = b""
    while len(head) < 9:  # a frame's header: length (3 bytes), type, flags, stream (4)
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(9 - len(head))
        except TimeoutError:
            return None
        if not chunk:
            return False
        head += chunk
    return head[3] == 4 and head[5:9] == bytes(4)  # SETTINGS, on stream 0


def _check_reachable(address: str) -> None:
    """Raise ``RuntimeError`` in one line unless a server that speaks Ray's protocol answers
    at ``address`` (``host:port`` or ``ray://host:port``; ``"auto"`` is Ray's to resolve)
    within :data:`CONNECT_TIMEOUT` seconds: nothing listening, and a server that is not
    Ray's (a web server or a database on that port, where ``ray.init`` waited unbounded),
    are each one line. Where Ray's connections use TLS (``RAY_USE_TLS``) only the TCP
    connection is checked."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    host = host.strip("[]")
    where = f"cannot connect to the Ray cluster at {address}"
    deadline = time.monotonic() + CONNECT_TIMEOUT
    try:
        sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
    except (OSError, OverflowError, ValueError) as err:
        raise RuntimeError(f"{where}: nothing answers there "
                           f"({err.strerror or err if isinstance(err, OSError) else err}); "
                           "start its head with `ray start --head` or check the address") from None
    try:
        if flag("RAY_USE_TLS", False, warn=False):  # a TLS handshake comes first there
            return
        try:
            grpc = _speaks_grpc(sock, deadline)
        except OSError:  # reset as it read the preface: not an HTTP/2 server
            grpc = False
    finally:
        sock.close()
    if grpc is None:
        raise RuntimeError(f"{where}: a server accepts connections there but said nothing in "
                           f"{CONNECT_TIMEOUT:g} s; a Ray head answers at once: check the "
                           "address (a head's port is 6379 by default, a Ray client server's "
                           "10001)")
    if not grpc:
        raise RuntimeError(f"{where}: the server there is not a Ray cluster (it does not "
                           "speak gRPC); check the address (a head's port is 6379 by "
                           "default, a Ray client server's 10001)")


def _remote_call(fn: Callable, *args) -> Outcome:
    """:func:`run_call` as a Ray task: the arguments come one by one, so that Ray hands the
    task the objects behind the references of shared ones.

    A group whose optimizer this worker does not know (a plugin installed where the sweep
    runs but not on the cluster's nodes) is ``"lost"``, not an error: its runs are left for
    ``--resume`` once the plugin is installed there, where as failed runs they were counted
    as diverged and never trained again."""
    unknown = unknown_optimizers(args)
    if unknown:
        return Outcome("lost", message=(
            f"the Ray worker on {socket.gethostname()} does not know the optimizer "
            f"{', '.join(map(repr, unknown))}: install the package that provides it on every "
            f"node of the cluster (a name optimlab.register gave in the sweep's own code is "
            f"not known to the workers: make it a plugin)"))
    return run_call(fn, args)


def unknown_optimizers(args: tuple) -> list[str]:
    """The optimizer names of the members in ``args`` (a training call's: a list of
    :class:`~optimlab.bench.trainer.Member`) that this process's registry does not know:
    a member's own, or the one a wrapper (Lookahead, SAM) is given to wrap by name."""
    from ..optim.registry import resolve

    unknown: dict[str, None] = {}
    for m in (m for arg in args if isinstance(arg, list) for m in arg):
        name = getattr(m, "optimizer", None)
        if not isinstance(name, str):
            continue
        try:
            wraps = resolve(name).capabilities.wraps
        except ValueError:
            unknown[name] = None
            continue
        inner = (getattr(m, "hparams", None) or {}).get(wraps) if wraps else None
        if isinstance(inner, str):
            try:
                resolve(inner)
            except ValueError:
                unknown[inner] = None
    return list(unknown)


def require_ray():
    """The ``ray`` module; RuntimeError (one line: what to install) when it is missing.
    Where it is imported here first, :func:`keep_on_loopback` comes before."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: pip install 'optimlab[ray]'") from None
    return ray


def make_executor(name: str = "local", address: str | None = None):
    """The executor called ``name`` (:data:`EXECUTORS`); ``address`` is Ray's only."""
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {name!r}")
    if name == "local":
        if address is not None:
            raise ValueError("--address is the Ray cluster's: it needs --executor ray")
        return LocalExecutor()
    return RayExecutor(address)
