"""The size caps (`sync_job.source.limits`): a policy over a cap is ValidationFailed, with the
count and the flag; the object cap counts the synced policies in name order."""

from __future__ import annotations

from sync_job.model import Gateway, PolicyOutcome, PolicyTarget, Reason, ServicePort
from sync_job.source.limits import Limits, cap


def target(name: str, sources: int = 1, ports: int = 1) -> PolicyTarget:
    return PolicyTarget(
        name,
        tuple(f"10.0.{i // 250}.{i % 250}" for i in range(sources)),
        Gateway("apps", name, "198.51.100.1", tuple(ServicePort("tcp", p) for p in range(ports))),
    )


def synced(name: str) -> PolicyOutcome:
    return PolicyOutcome(name, Reason.SYNCED, "ok", 1, "198.51.100.1", f"apps/{name}")


def objects(t: PolicyTarget) -> int:
    return len(t.sources) + 2 * len(t.gateway.ports)


def run(targets: list[PolicyTarget], limits: Limits) -> dict[str, PolicyOutcome]:
    outcomes, kept = cap([synced(t.name) for t in targets], targets, limits, objects)
    assert [t.name for t in kept] == [o.name for o in outcomes if o.ready]
    return {o.name: o for o in outcomes}


def test_the_defaults() -> None:
    assert Limits() == Limits(1_000, 50, 20_000)


def test_sources_at_the_cap_pass_one_more_is_refused_with_the_count_and_the_flag() -> None:
    result = run([target("a", sources=1_000), target("b", sources=1_001)], Limits())
    assert result["a"].ready
    b = result["b"]
    assert (b.reason, b.gateway_ip, b.gateway_service) == (Reason.VALIDATION_FAILED, None, None)
    assert b.message == (
        "CiliumClusterwideNetworkPolicy b: 1,001 sources, more than --max-sources-per-policy "
        "(1,000); split the policy or raise the cap"
    )


def test_ports_over_the_cap_are_refused() -> None:
    result = run([target("a", ports=3), target("b", ports=4)], Limits(ports_per_policy=3))
    assert result["a"].ready
    assert result["b"].reason is Reason.VALIDATION_FAILED
    assert result["b"].message == (
        "CiliumClusterwideNetworkPolicy b: its gateway Service apps/b has 4 ports, more than "
        "--max-ports-per-policy (3)"
    )


def test_the_object_cap_refuses_the_policy_that_goes_over_in_name_order() -> None:
    # a: 10+2, b: 20+2, c: 1+2 objects; cap 20: a fits (12), b would make 34, c still fits (15)
    targets = [target("c"), target("b", sources=20), target("a", sources=10)]
    result = run(targets, Limits(router_objects=15))
    assert result["a"].ready and result["c"].ready
    assert result["b"].message == (
        "CiliumClusterwideNetworkPolicy b: its 22 router objects would make 34 owned in all, "
        "more than --max-router-objects (15)"
    )
    assert not run(targets, Limits(router_objects=14))["c"].ready  # 12 + 3 = 15 > 14


def test_a_policy_refused_for_its_own_size_does_not_count_towards_the_total() -> None:
    result = run([target("a", sources=30), target("b", sources=5)], Limits(25, 50, 8))
    assert not result["a"].ready and "--max-sources-per-policy" in result["a"].message
    assert result["b"].ready  # 5 + 2 = 7 <= 8


def test_an_outcome_that_already_failed_is_left_as_it_is() -> None:
    failed = PolicyOutcome("x", Reason.DISCOVERY_FAILED, "no Service")
    outcomes, kept = cap([failed], [], Limits(), objects)
    assert outcomes == [failed] and kept == []
