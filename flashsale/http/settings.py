"""The order service's settings: one validated value, built once from the command line (`flashsale serve`, or the
service a `flashsale load --target http` run starts) or from Python, and used by `create_app`, the server
processes (`flashsale.serving.process`, `ServerProcess`) and the load runner.

    settings = ServiceSettings(strategy="atomic", queue_size=100)  # refused at once (`InvalidSetting`)
    settings = ServiceSettings.from_args(args)                     # from the options `add_arguments` declared
    settings.to_args()                                              # back to `flashsale serve` options

Each setting is a field declared with `setting(...)`: its option, its help, and, for those a load run passes on to
the service it starts, `load=True` (or the option's name there). Adding a setting is adding a field here and using it
where it acts: `flashsale serve`, `flashsale load`, `ServerProcess` and the refusals follow from the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flashsale import strategies
from flashsale.units import positive_int, seconds

DEFAULT_POOL_SIZE = 8  # the issue measured 5-10 connections as best for one hot row
DEFAULT_POOL_TIMEOUT_S = 5.0
DEFAULT_MAX_WAITING = 1000  # requests queued for a connection; as many as the load runner keeps in flight
DEFAULT_OPEN_TIMEOUT_S = 30.0  # startup's wait for the pool's connections
GRACEFUL_SHUTDOWN_S = 10.0  # SIGTERM: how long requests in flight may take to finish
STOP_MARGIN_S = 10.0  # beyond the drain: orders a worker had begun may finish; then a stopping worker is killed
ACCEPT_MODES = ("sync", "async")
ADMISSION_MODES = ("local", "redis")
CLAIM_AFTER_S = 10.0  # shared admission: a settler's unacknowledged entry is taken over after this long


class InvalidSetting(ValueError):
    """Settings the service cannot run with. The message names each setting as its reader knows it: by its field
    in Python ("queue size"), by its option on the command line (`for_options`: "--queue-size")."""

    def __init__(self, template: str) -> None:
        self.template = template  # settings written as {field_name}
        super().__init__(self.render(lambda name: name.replace("_", " ")))

    def render(self, name: Callable[[str], str]) -> str:
        return self.template.format_map(_Names(name))


class _Names(dict):
    def __init__(self, name: Callable[[str], str]) -> None:
        super().__init__()
        self.name = name

    def __missing__(self, key: str) -> str:
        return self.name(key)


def setting(
    default: Any,
    option: str | None,
    help: str,
    *,
    parse: Callable[[str], Any] | None = None,
    choices: Callable[[], Any] | tuple | None = None,
    load: bool | str = False,
) -> Any:
    """A field of `ServiceSettings`: its default, its `flashsale serve` option (None: Python only), how the option
    is parsed, and whether a load run passes it on to the service it starts (`load`: True, or the option's name in
    `flashsale load`)."""
    meta = {"option": option, "help": help, "parse": parse, "choices": choices, "load": load}
    return field(default=default, metadata=meta)


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class ServiceSettings:
    """Everything one `flashsale serve` runs with, but the database (its URL comes from the environment)."""

    host: str = setting("127.0.0.1", "--host", "address to bind (default 127.0.0.1: loopback only)")
    port: int = setting(8000, "--port", "TCP port (default 8000)", parse=_port)
    strategy: str = setting(strategies.DEFAULT_STRATEGY, "--strategy", "locking strategy", choices=strategies.names)
    pool_size: int = setting(DEFAULT_POOL_SIZE, "--pool-size", f"database connections (default {DEFAULT_POOL_SIZE})")
    pool_timeout_s: float = setting(
        DEFAULT_POOL_TIMEOUT_S,
        "--pool-timeout",
        f"how long a request waits for a free connection before a 503 (default {DEFAULT_POOL_TIMEOUT_S:g}s; "
        "e.g. 500ms)",
        parse=seconds,
    )
    max_waiting: int = setting(
        DEFAULT_MAX_WAITING,
        "--max-waiting",
        f"requests that may wait for a connection at once; more get a 503 at once (default {DEFAULT_MAX_WAITING}; "
        "0: no bound)",
    )
    workers: int = setting(
        1,
        "--workers",
        "server processes on the port, each with its own pool of --pool-size connections and its own strategy "
        "instance (default 1: this process serves)",
        parse=positive_int,
        load="--service-workers",
    )
    drain_timeout_s: float = setting(
        GRACEFUL_SHUTDOWN_S,
        "--drain-timeout",
        "at SIGTERM, how long the requests in flight may take to finish before they are cancelled "
        f"(default {GRACEFUL_SHUTDOWN_S:g}s)",
        parse=seconds,
    )
    stop_margin_s: float = setting(
        STOP_MARGIN_S,
        "--stop-margin",
        "after --drain-timeout, how long orders already being placed may take to finish, so that their answers "
        "reach their clients; under --workers N, a worker still stopping after it is killed "
        f"(default {STOP_MARGIN_S:g}s)",
        parse=seconds,
    )
    open_timeout_s: float = setting(
        DEFAULT_OPEN_TIMEOUT_S,
        "--open-timeout",
        "at startup, how long each server process waits for its pool's connections before it gives up with "
        f"exit status 3 (default {DEFAULT_OPEN_TIMEOUT_S:g}s)",
        parse=seconds,
    )
    queue_size: int = setting(
        0,
        "--queue-size",
        "orders that may wait in an in-process queue in front of the strategy; more get a 503 queue_full at once "
        "(default 0: no queue, every request goes to the strategy; per server process)",
        load=True,
    )
    queue_workers: int = setting(
        1, "--queue-workers", "workers taking orders from the queue (default 1)", parse=positive_int, load=True
    )
    user_rate: float = setting(
        0.0,
        "--user-rate",
        "orders per second per user (a token bucket, burst as many); more get a 429 rate_limited before any "
        "database work (default 0: no limit; per server process)",
        parse=float,
        load=True,
    )
    user_burst: float = setting(
        0.0,
        "--user-burst",
        "orders a user may send at once before --user-rate paces them (the token bucket's size; default 0: as many "
        "as --user-rate, at least 1)",
        parse=float,
        load=True,
    )
    accept: str = setting(
        "sync",
        "--accept",
        "sync: answer an order once placed (201); async: store it as PENDING and answer 202 with its status URL at "
        "once, the queue's workers settle it (needs --queue-size; default sync)",
        choices=ACCEPT_MODES,
        load=True,
    )
    admission: str = setting(
        "local",
        "--admission",
        "local: --user-rate and --queue-size hold per server process; redis: they hold for the whole service, every "
        "process and host sharing one Redis (FLASHSALE_REDIS_URL, else the embedded Valkey): the rate limit is one "
        "Lua script, and with --accept async the queue is a Redis Stream read by every process's settlers; while "
        "Redis does not answer, each process falls back to its share of both (default local)",
        choices=ADMISSION_MODES,
        load=True,
    )
    claim_after_s: float = setting(
        CLAIM_AFTER_S,
        "--claim-after",
        "--admission redis --accept async: an order a settler took from the stream and has not settled for this "
        f"long (its process died) is taken over by another (default {CLAIM_AFTER_S:g}s)",
        parse=seconds,
    )
    access_log: bool = setting(True, None, "a log line per request (`serve --no-access-log`: none, for load runs)")
    check_connections: bool = setting(
        True, None, "test each pooled connection before use, so that one broken while idle is replaced"
    )
    probe_interval_s: float = setting(0.25, None, "how often the database guard tries a lost database")

    def __post_init__(self) -> None:
        for problem in self._problems():
            raise InvalidSetting(problem)

    def _problems(self) -> Iterator[str]:
        if self.pool_size < 1:
            yield f"{{pool_size}} must be at least 1, got {self.pool_size}"
        if not self.pool_timeout_s > 0:
            yield f"{{pool_timeout_s}} must be positive, got {self.pool_timeout_s:g}s"
        if self.max_waiting < 0:
            yield f"{{max_waiting}} must be 0 (no bound) or more, got {self.max_waiting}"
        if self.workers < 1:
            yield f"{{workers}} must be at least 1, got {self.workers}"
        for name in ("drain_timeout_s", "stop_margin_s", "open_timeout_s"):
            if not getattr(self, name) >= 0:
                yield f"{{{name}}} must be 0 or more, got {getattr(self, name):g}s"
        if self.queue_size < 0:
            yield f"{{queue_size}} must be 0 (no queue) or more, got {self.queue_size}"
        if self.queue_workers < 1:
            yield f"{{queue_workers}} must be at least 1, got {self.queue_workers}"
        if not (self.user_rate >= 0 and math.isfinite(self.user_rate)):
            yield f"{{user_rate}} must be 0 (no limit) or more, got {self.user_rate}"
        if not (self.user_burst >= 0 and math.isfinite(self.user_burst)):
            yield f"{{user_burst}} must be 0 (as many as the rate) or more, got {self.user_burst}"
        if self.user_burst and not self.user_rate:
            yield "{user_burst} needs {user_rate}: the burst is the rate limit's"
        if self.accept not in ACCEPT_MODES:
            yield f"{{accept}} must be sync or async, got {self.accept!r}"
        if self.accept == "async" and not self.queue_size:
            yield "{accept} async needs the order queue: give {queue_size} 1 or more"
        if self.accept == "async" and self.pool_size <= self.queue_workers:
            yield (
                "{accept} async needs more connections than queue workers (each settlement holds one while the "
                f"strategy uses another): {{pool_size}} {self.pool_size}, {{queue_workers}} {self.queue_workers}"
            )
        if self.admission not in ADMISSION_MODES:
            yield f"{{admission}} must be local or redis, got {self.admission!r}"
        if self.admission == "redis" and not (self.user_rate or (self.accept == "async" and self.queue_size)):
            yield "{admission} redis shares {user_rate} and, with {accept} async, {queue_size}: give one of them"
        if not self.claim_after_s > 0:
            yield f"{{claim_after_s}} must be positive, got {self.claim_after_s:g}s"
        if self.strategy not in strategies.names():
            yield f"{{strategy}} must be one of {', '.join(strategies.names())}, got {self.strategy!r}"

    def replace(self, **changes: Any) -> ServiceSettings:
        return dataclasses.replace(self, **changes)

    # The command line ------------------------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | Any, *, for_load: bool = False) -> None:
        """Declare the settings' options: all of `flashsale serve`'s, or (`for_load`) those a load run passes on to
        the service it starts, under their names there."""
        defaults = cls()
        for f, option in _options(for_load):
            meta = f.metadata
            choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
            kind = meta["parse"] or type(getattr(defaults, f.name))
            parser.add_argument(
                option,
                dest=_dest(f.name, for_load),
                type=kind,
                choices=choices,
                default=getattr(defaults, f.name),
                help=meta["help"] if not for_load else f"serve {meta['option']}: {meta['help']}",
            )
        if not for_load:
            parser.add_argument(
                "--no-access-log", dest="access_log", action="store_false", help="no log line per request (load runs)"
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, for_load: bool = False, **others: Any) -> ServiceSettings:
        """The settings the parsed options give (with `others` for the settings they do not name); refusals name
        the options."""
        values = {f.name: getattr(args, _dest(f.name, for_load)) for f, _ in _options(for_load)}
        if not for_load:
            values["access_log"] = args.access_log
        try:
            return cls(**values, **others)
        except InvalidSetting as exc:
            names = {f.name: option for f, option in _options(for_load)}
            raise ValueError(exc.render(lambda name: names.get(name, name.replace("_", " ")))) from None

    def to_args(self, *, skip: tuple[str, ...] = ()) -> list[str]:
        """`flashsale serve` options for every setting that differs from its default (but those in `skip`)."""
        defaults = ServiceSettings()
        args: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in skip or value == getattr(defaults, f.name):
                continue
            if f.name == "access_log":
                args.append("--no-access-log")
            elif f.metadata["option"] is not None:
                args += [f.metadata["option"], _text(value, f.metadata["parse"])]
        return args

    def load_params(self) -> dict[str, Any]:
        """The settings a load run passes on, under their `flashsale load` names (`service_workers`, ...): the
        columns of a measured cell."""
        return {_dest(f.name, True): getattr(self, f.name) for f, _ in _options(True)}


def _options(for_load: bool) -> list[tuple[dataclasses.Field, str]]:
    found = []
    for f in dataclasses.fields(ServiceSettings):
        option, load = f.metadata["option"], f.metadata["load"]
        if option is None or (for_load and not load):
            continue
        found.append((f, load if for_load and isinstance(load, str) else option))
    return found


def _dest(name: str, for_load: bool) -> str:
    if for_load:
        load = next(f.metadata["load"] for f in dataclasses.fields(ServiceSettings) if f.name == name)
        if isinstance(load, str):
            return load.removeprefix("--").replace("-", "_")
    return name


def _text(value: Any, parse: Callable[[str], Any] | None) -> str:
    if isinstance(value, float):
        return f"{value:g}s" if parse is seconds else f"{value:g}"
    return str(value)
