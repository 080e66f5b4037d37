"""The keeper: a small detached process that stops the server once it has been idle long enough.

A server should outlive its last user for a short while (the *linger* time), so that a shell
loop of skyreg commands does not pay a start and a shutdown checkpoint per command. Somebody
must then stop it when no skyreg process may be alive any more, and a user killed with SIGKILL
cannot arrange anything. The postmaster cannot do it either: PostgreSQL has no "stop when
idle" setting. So every running server gets one keeper, started next to it by whichever
process starts it (or finds it without one), in its own session, holding no database
connection and importing nothing but the standard library and this package's lock code.

The keeper polls :class:`~skyreg.db.embedded.lease.Lease` under the lifecycle lock, so its
decision cannot race a process that is joining. It stops the server when nobody has held a
registration for the linger time, counted from the last user's departure (with the linger
that user asked for) or, if the last user died without leaving, from when the keeper first
saw nobody. It never stops a pinned server (``skyreg server start``). It exits when the server
is gone (stopped, crashed or killed), or when its home disappears (then ending the server
too, if its data directory was deleted under it). If the keeper itself is
killed, the next process that arrives or leaves starts a new one; until then, the last user to
leave stops the server at once rather than leaving it up with nobody to stop it.

Run as a program: ``python -m skyreg.db.embedded.keeper --home HOME --linger S --lock-fd N``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from skyreg.db.embedded.lease import Lease
from skyreg.db.embedded.paths import Layout
from skyreg.db.embedded.postmaster import stop_postmaster
from skyreg.db.embedded.processes import reap, running_postmaster
from skyreg.errors import DatabaseError

log = logging.getLogger(__name__)

_MODULE = "skyreg.db.embedded.keeper"
_LOG_ROTATE_BYTES = 1024 * 1024


def poll_interval(linger: float) -> float:
    """How often to look: a quarter of the linger time, between 0.1 and 1 second."""
    return min(1.0, max(0.1, linger / 4))


def watch(
    lease: Lease,
    linger: float,
    *,
    server_id: Callable[[], str | None],
    stop: Callable[[], None],
    since: float | None = None,
    poll: float | None = None,
    done: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.time,
) -> str:
    """Watch one home's server until it is stopped here or gone; return which (for the log).

    ``server_id`` names the running server run (None: none runs), ``stop`` stops it; both are
    called under the lifecycle lock, and so is ``done`` (which releases the keeper's lock)
    right before returning, so that no process can find a server without a live keeper.
    ``since`` is when the keeper was started (the last moment a user was known to be there).
    """
    interval = poll_interval(linger) if poll is None else poll
    last_busy = clock() if since is None else since
    idle_since: float | None = None
    while True:
        time.sleep(interval)
        with lease.deciding_if_free() as deciding:
            if not deciding:
                if not lease.lifecycle_path.exists():
                    return "the home is gone"
                continue
            current = server_id()
            if current is None:
                done()
                return "the server is gone"
            now = clock()
            if lease.pinned() == current or not lease.unused():
                last_busy, idle_since = now, None
                continue
            if idle_since is None:
                idle_since = now
            departure = lease.last_departure()
            if departure is not None and departure.when >= last_busy:
                unused_since, wanted = departure.when, departure.linger
            else:  # the last user died without leaving
                unused_since, wanted = idle_since, linger
            if now < unused_since + wanted:
                continue
            try:
                stop()
            finally:
                done()
            return (f"stopped the server: unused for {now - unused_since:.1f} s "
                    f"(linger {wanted:g} s)")


def spawn_keeper(layout: Layout, lease: Lease, linger: float) -> bool:
    """Start a keeper for the server of ``layout`` unless one is alive; whether one now is.

    Call while deciding (the lifecycle lock held). The new keeper inherits the lock on
    keeper.lock taken here, so it is counted as alive from this moment on.
    """
    fd = lease.claim_keeper()
    if fd is None:
        return True
    try:
        if not sys.executable:
            log.warning("no Python interpreter to run the embedded server's keeper")
            return False
        root = str(Path(__file__).resolve().parents[3])  # the directory holding skyreg/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])
        cmd = [sys.executable, "-m", _MODULE, "--home", str(layout.home),
               "--linger", repr(float(linger)), "--lock-fd", str(fd),
               "--since", repr(time.time())]
        try:
            layout.log_dir.mkdir(mode=0o700, exist_ok=True)
            log_path = layout.log_dir / "keeper.log"
            if log_path.exists() and log_path.stat().st_size > _LOG_ROTATE_BYTES:
                os.replace(log_path, log_path.with_name("keeper.log.1"))
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd="/", env=env, start_new_session=True, close_fds=True, pass_fds=(fd,),
                )
        except OSError as exc:
            log.warning("cannot start the embedded server's keeper: %s", exc)
            return False
        lease.record_keeper_pid(fd, proc.pid)
    finally:
        os.close(fd)
    threading.Thread(target=reap, args=(proc,), name="skyreg-keeper-reaper", daemon=True).start()
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=_MODULE, description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--linger", required=True, type=float)
    parser.add_argument("--lock-fd", required=True, type=int)
    parser.add_argument("--since", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s skyreg keeper [%(process)d] %(message)s")
    layout = Layout(args.home)
    lease = Lease(layout.home)

    seen: list[int] = []

    def server_id() -> str | None:
        found = running_postmaster(layout.data_dir)
        if found is None:
            return None
        seen[:] = [found.pid]
        return found.server_id

    def stop() -> None:
        stop_postmaster(layout)

    def done() -> None:
        os.close(args.lock_fd)

    try:
        reason = watch(lease, args.linger, server_id=server_id, stop=stop, since=args.since,
                       done=done)
    except DatabaseError as exc:
        log.error("%s", exc)
        return 1
    if reason.startswith("stopped"):
        log.info("%s", reason)
    elif seen:  # gone, or its home is: a server left running on a deleted home must end
        end_if_deleted(seen[0], layout.data_dir)
    return 0


def end_if_deleted(pid: int, data_dir: Path) -> None:
    """Stop a postmaster whose data directory was deleted under it (Linux only).

    Somebody removed the home of a lingering server (a temporary home, most likely): nobody
    can use that server any more, and left alone it would run forever. It is recognised by
    its working directory, which the kernel then shows as ``<data_dir> (deleted)``; a home
    that was moved instead shows its new path and is left alone. Immediate shutdown: there
    is no data left to checkpoint.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return
        if os.readlink(f"/proc/{pid}/cwd") != f"{data_dir} (deleted)":
            return
        os.kill(pid, signal.SIGQUIT)
    except OSError:
        return
    log.info("the home of the server (pid %d) was deleted: stopped it", pid)


if __name__ == "__main__":
    sys.exit(main())
