"""Exceptions raised by the core; edges map them to their own transport errors.

PluginError
├── UnknownService        no service is registered under the id
├── UnsupportedHook       the service exists but does not answer this hook
└── RegistryError         the registry was declared inconsistently (a programming error)
"""


class PluginError(Exception):
    """Base of every error the core raises on purpose."""


class UnknownService(PluginError):
    def __init__(self, service_id: str) -> None:
        super().__init__(f"no CDS service with id {service_id!r}")
        self.service_id = service_id


class UnsupportedHook(PluginError):
    def __init__(self, service_id: str, hook: str) -> None:
        super().__init__(f"service {service_id!r} does not answer hook {hook!r}")
        self.service_id = service_id
        self.hook = hook


class RegistryError(PluginError):
    """Raised at start-up, never per request: two services share an id, or a declaration is incomplete."""
