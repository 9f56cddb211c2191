"""GitHub and OpenAI for Fleetwright steps: typed clients, rate limits, circuit breakers,
signed webhooks into Prefect events."""

from fleetwright.integrations.breaker import CircuitBreaker, breaker_for
from fleetwright.integrations.services import (
    ServiceInfo,
    add_service,
    list_services,
    load_credentials,
    remove_service,
    service_block_name,
)
from fleetwright.integrations.steps import STEP_KINDS, Integrations, Resolver

__all__ = [
    "STEP_KINDS",
    "CircuitBreaker",
    "Integrations",
    "Resolver",
    "ServiceInfo",
    "add_service",
    "breaker_for",
    "list_services",
    "load_credentials",
    "remove_service",
    "service_block_name",
]
