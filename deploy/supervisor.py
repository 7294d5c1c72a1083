"""The local stack's supervisor: `./xinyong up` starts it beside the services (one per stack,
`python -m deploy.supervisor`, its log `.local/run/stack/supervisor.log`). Every second it
looks at the processes the stack wants (each start writes `<label>.want`, each stop removes
it: deploy/stack.py::ServiceProcess) and starts again one that has exited.

- **Backoff**: the first restart after `first_delay` seconds, then twice as long after each
  exit that follows quickly, up to `max_delay`; a process that stayed up `stable_after`
  seconds starts the count afresh.
- **Crash loop**: `burst` restarts within `window` seconds and the supervisor gives up on
  that process (as systemd's StartLimitBurst in deploy/systemd/): it writes
  `<label>.given-up` with the reason, logs it, and leaves the process down until someone
  starts it (`./xinyong service start <name>` or `./xinyong up`), which clears it.
- **Counted and logged**: every restart goes in `<label>.restarts` (JSON: how many, when),
  which `./xinyong status` shows, in the supervisor's log, and as a line in the process's
  own log; the service itself counts its starts in its database (`service_starts`, the
  `XinyongServiceRestartLoop` alert).
- **Stops are not fought**: a stop removes the want file under the same lock a restart
  takes, so a process stopped on purpose stays stopped.

Elsewhere systemd (`Restart=on-failure`, deploy/systemd/) and Kubernetes do this job.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from deploy import stack
from shared.settings import Settings, get_settings

log = logging.getLogger("xinyong.supervisor")

SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class Policy:
    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    burst: int = 5
    window: float = 600.0


@dataclass
class Record:
    """What the supervisor knows of one process's restarts (times: seconds since the
    epoch)."""

    restarts: int = 0
    recent: list[float] = field(default_factory=list)  # restarts within the window
    failures: int = 0  # exits in a row, each soon after the last restart
    last_exit: float | None = None
    last_restart: float | None = None


@dataclass(frozen=True)
class Decision:
    action: Literal["restart", "give_up"]
    at: float  # when to restart (ignored for give_up)
    reason: str = ""


def on_exit(record: Record, now: float, policy: Policy) -> Decision:
    """What to do about a process found exited at `now`: restart it after a backoff, or give
    up because it keeps crashing. Pure: the caller keeps the record."""
    recent = [t for t in record.recent if now - t < policy.window]
    if len(recent) >= policy.burst:
        return Decision("give_up", now, f"{len(recent)} restarts in the last "
                                         f"{policy.window / 60:g} minutes")
    failures = record.failures
    if record.last_restart is not None and (record.last_exit or now) - record.last_restart \
            >= policy.stable_after:
        failures = 0
    delay = min(policy.first_delay * 2 ** failures, policy.max_delay)
    return Decision("restart", now + delay, f"restart in {delay:g} s")


def after_restart(record: Record, now: float, policy: Policy) -> Record:
    recent = [t for t in record.recent if now - t < policy.window] + [now]
    stable = (record.last_restart is not None and record.last_exit is not None
              and record.last_exit - record.last_restart >= policy.stable_after)
    return Record(restarts=record.restarts + 1, recent=recent,
                  failures=1 if stable else record.failures + 1,
                  last_exit=record.last_exit, last_restart=now)


def restarts_file(proc: stack.ServiceProcess) -> Path:
    return proc.run_dir / f"{proc.label}.restarts"


def read_record(proc: stack.ServiceProcess) -> Record:
    try:
        return Record(**json.loads(restarts_file(proc).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return Record()


def _write_record(proc: stack.ServiceProcess, record: Record) -> None:
    tmp = restarts_file(proc).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(restarts_file(proc))


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Supervisor:
    def __init__(self, settings: Settings, policy: Policy = Policy(), tick: float = 1.0) -> None:
        self.settings = settings
        self.policy = policy
        self.tick = tick
        self.pending: dict[str, Decision] = {}  # label -> restart planned

    def once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for proc in stack.wanted(self.settings):
            if proc.name == SUPERVISOR:
                continue
            if proc.pid() is not None:
                self.pending.pop(proc.label, None)
                continue
            if proc.given_up_file.exists():
                continue
            decision = self.pending.get(proc.label)
            if decision is None:
                decision = self._exited(proc, now)
                if decision is None:
                    continue
            if now >= decision.at:
                self._restart(proc, now)

    def _exited(self, proc: stack.ServiceProcess, now: float) -> Decision | None:
        record = read_record(proc)
        record.last_exit = now
        _write_record(proc, record)
        decision = on_exit(record, now, self.policy)
        last = proc.tail(1).strip()
        if decision.action == "give_up":
            message = (f"{proc.label} keeps exiting ({decision.reason}): given up. Fix the "
                       f"cause (its log: {proc.log_file}), then `./xinyong service start "
                       f"{proc.name}" + (f" --instance {proc.instance}`" if proc.instance > 1
                                         else "`"))
            proc.given_up_file.write_text(f"{_stamp(now)}: {decision.reason}\n")
            log.error("%s", message)
            self._note(proc, f"supervisor: {message}")
            return None
        log.warning("%s exited (last log line: %s); %s", proc.label, last or "none",
                    decision.reason)
        self.pending[proc.label] = decision
        return decision

    def _restart(self, proc: stack.ServiceProcess, now: float) -> None:
        self.pending.pop(proc.label, None)
        with stack.supervision(proc.run_dir):
            # Stopped meanwhile (no longer wanted), or started by someone else: nothing to do.
            if not proc.want_file.exists() or proc.pid() is not None:
                return
            record = after_restart(read_record(proc), now, self.policy)
            self._note(proc, f"supervisor: restart {record.restarts} at {_stamp(now)}")
            pid = proc._spawn()
            _write_record(proc, record)
        log.warning("%s restarted (pid %d; restart %d, %d in the last %g minutes)",
                    proc.label, pid, record.restarts, len(record.recent),
                    self.policy.window / 60)

    @staticmethod
    def _note(proc: stack.ServiceProcess, line: str) -> None:
        with open(proc.log_file, "a") as f:
            f.write(f"---- {line}\n")

    def run(self) -> None:
        log.info("supervising the processes wanted in %s", stack.run_dir(self.settings))
        while True:
            try:
                self.once()
            except Exception:  # a bad file or a failed start: logged, tried again next tick
                log.exception("supervision round failed")
            time.sleep(self.tick)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.supervisor",
                                     description=__doc__.split("\n\n")[0])
    defaults = Policy()
    for name in ("first_delay", "max_delay", "stable_after", "window"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float,
                            default=getattr(defaults, name), help="seconds")
    parser.add_argument("--burst", type=int, default=defaults.burst,
                        help="restarts within --window that make a crash loop")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between rounds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    policy = Policy(args.first_delay, args.max_delay, args.stable_after, args.burst,
                    args.window)
    Supervisor(get_settings(), policy, args.tick).run()


if __name__ == "__main__":
    main()
