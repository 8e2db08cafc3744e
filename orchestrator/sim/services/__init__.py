"""The services a phone answers on OPEN, by name; a new one is one `register` call.

A service name is `base[,arg…][:rest]` (`shell,v2,TERM=xterm,raw:ls`, `sync:`, `tcp:8022`).
A factory gets the phone, the args and the rest, and returns a handler (run in its own
thread with the stream) or None, which the phone answers with CLSE (e.g. `reboot:`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.sim.transport import Handler

if TYPE_CHECKING:
    from orchestrator.sim.phone import Phone

Factory = Callable[["Phone", list[str], str], Handler | None]

_REGISTRY: dict[str, Factory] = {}


def register(base: str, factory: Factory) -> None:
    _REGISTRY[base] = factory


def parse_service(name: str) -> tuple[str, list[str], str]:
    """'shell,v2,raw:ls -l' → ('shell', ['v2', 'raw'], 'ls -l')."""
    head, _, rest = name.partition(":")
    base, *args = head.split(",")
    return base, [a for a in args if a], rest


def resolve(phone: Phone, name: str) -> Handler | None:
    base, args, rest = parse_service(name)
    factory = _REGISTRY.get(base)
    return factory(phone, args, rest) if factory else None


def _register_builtins() -> None:
    from orchestrator.sim.services import forward, shell, sync

    register("shell", shell.factory)
    register("exec", shell.exec_factory)
    register("sync", sync.factory)
    register("tcp", forward.factory)


_register_builtins()
