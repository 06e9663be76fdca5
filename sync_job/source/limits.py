"""The size caps: sources per policy, ports per gateway Service, owned router objects in all.

Pure. A policy over a cap is `ValidationFailed`, its message giving the count and the flag that
raises the cap; like any failed policy, what it already owns on the router stays as it is. The
caps bound a run's work and memory (README "Performance": at a real router's ~0.1 s a request, a
60,000-source policy alone is ~100 minutes of writes) and catch a policy that lists far more
than intended.

The object cap counts what the synced policies would own (the caller says how many objects a
target makes), policies in name order: a policy that would take the total over the cap is
refused and the next ones are still counted, so which policies are refused does not depend on
the order the cluster listed them in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sync_job.model import PolicyOutcome, PolicyTarget, Reason

DEFAULT_MAX_SOURCES = 1_000
DEFAULT_MAX_PORTS = 50
DEFAULT_MAX_OBJECTS = 20_000


@dataclass(frozen=True, slots=True)
class Limits:
    """--max-sources-per-policy, --max-ports-per-policy, --max-router-objects."""

    sources_per_policy: int = DEFAULT_MAX_SOURCES
    ports_per_policy: int = DEFAULT_MAX_PORTS
    router_objects: int = DEFAULT_MAX_OBJECTS


def over_limit(target: PolicyTarget, limits: Limits) -> str | None:
    """Why one policy alone is over a cap, or None."""
    what = f"CiliumClusterwideNetworkPolicy {target.name}"
    if len(target.sources) > limits.sources_per_policy:
        return (
            f"{what}: {len(target.sources):,} sources, more than --max-sources-per-policy "
            f"({limits.sources_per_policy:,}); split the policy or raise the cap"
        )
    service = f"{target.gateway.namespace}/{target.gateway.name}"
    if len(target.gateway.ports) > limits.ports_per_policy:
        return (
            f"{what}: its gateway Service {service} has {len(target.gateway.ports):,} ports, "
            f"more than --max-ports-per-policy ({limits.ports_per_policy:,})"
        )
    return None


def cap(
    outcomes: Sequence[PolicyOutcome],
    targets: Sequence[PolicyTarget],
    limits: Limits,
    objects_of: Callable[[PolicyTarget], int],
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    """The outcomes with every policy over a cap `ValidationFailed`, and the targets left."""
    refused: dict[str, str] = {}
    total = 0
    for target in sorted(targets, key=lambda t: t.name):
        why = over_limit(target, limits)
        count = objects_of(target) if why is None else 0
        if why is None and total + count > limits.router_objects:
            why = (
                f"CiliumClusterwideNetworkPolicy {target.name}: its {count:,} router objects "
                f"would make {total + count:,} owned in all, more than --max-router-objects "
                f"({limits.router_objects:,})"
            )
        if why is None:
            total += count
        else:
            refused[target.name] = why
    return [
        replace(o, reason=Reason.VALIDATION_FAILED, message=refused[o.name],
                gateway_ip=None, gateway_service=None)
        if o.name in refused else o
        for o in outcomes
    ], [t for t in targets if t.name not in refused]  # fmt: skip
