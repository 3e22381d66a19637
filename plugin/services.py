"""The service registry port: how the core declares CDS services and what a hook call hands them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from plugin.cards import ServiceResult
from plugin.errors import RegistryError, UnknownService, UnsupportedHook

IssueSeverity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class ServiceDeclaration:
    """Everything discovery publishes about a service, plus which prefetch keys it cannot do without."""

    id: str
    hooks: tuple[str, ...]
    title: str
    description: str
    prefetch: Mapping[str, str] = field(default_factory=dict)
    required_prefetch: frozenset[str] = frozenset()
    usage_requirements: str | None = None

    def __post_init__(self) -> None:
        if not self.id or not self.hooks:
            raise RegistryError("a service needs an id and at least one hook")
        missing = self.required_prefetch - set(self.prefetch)
        if missing:
            raise RegistryError(
                f"service {self.id!r} requires prefetch keys it never declares: {sorted(missing)}"
            )


@dataclass(frozen=True, slots=True)
class PrefetchIssue:
    """Why a prefetch key carries no data: recorded so cards and the audit can say what was missing."""

    key: str
    code: str
    diagnostics: str
    severity: IssueSeverity = "warning"


@dataclass(frozen=True, slots=True)
class HookCall:
    """One authenticated, parsed hook call with its prefetch resolved; tokens never reach the core."""

    service_id: str
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Mapping[str, Any] | None]
    prefetch_issues: tuple[PrefetchIssue, ...] = ()
    fhir_server: str | None = None
    tenant: str | None = None


class CdsService(Protocol):
    @property
    def declaration(self) -> ServiceDeclaration: ...

    def evaluate(self, call: HookCall) -> ServiceResult: ...


class ServiceRegistry:
    """The services one deployment offers, looked up by id on every hook call."""

    def __init__(self, services: Iterable[CdsService]) -> None:
        self._services: dict[str, CdsService] = {}
        for service in services:
            service_id = service.declaration.id
            if service_id in self._services:
                raise RegistryError(f"two services declare the id {service_id!r}")
            self._services[service_id] = service

    def __iter__(self) -> Iterator[CdsService]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    def get(self, service_id: str) -> CdsService:
        try:
            return self._services[service_id]
        except KeyError:
            raise UnknownService(service_id) from None

    def for_hook(self, service_id: str, hook: str) -> CdsService:
        service = self.get(service_id)
        if hook not in service.declaration.hooks:
            raise UnsupportedHook(service_id, hook)
        return service
