"""Reading a CCNP: sources (allow minus deny), reserved ranges, rules, selectors and every error."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync_job.model import PolicyError, Reason
from sync_job.source.cilium import DEFAULT_RESERVED, PolicySpec, parse_policy
from sync_job.source.selectors import parse_selector

NAME = "my-policy"
OWNER = f"CiliumClusterwideNetworkPolicy {NAME}"
WEB = {"matchLabels": {"app": "web"}}
POLICIES = Path(__file__).resolve().parents[1] / "fixtures" / "cilium" / "policies"


def ccnp(spec: Any = None, specs: Any = None, **metadata: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": NAME, **metadata},
    }
    if spec is not None:
        raw["spec"] = spec
    if specs is not None:
        raw["specs"] = specs
    return raw


def rule(*ingress: Any, deny: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {"endpointSelector": WEB, "ingress": list(ingress)}
    if deny is not None:
        result["ingressDeny"] = deny
    return result


def cidrs(*values: Any) -> dict[str, Any]:
    return {"fromCIDR": list(values)}


def cidr_set(*entries: Any) -> dict[str, Any]:
    return {"fromCIDRSet": list(entries)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(ccnp(rule()), (), id="no-sources-is-valid"),
        pytest.param(ccnp({"endpointSelector": WEB}), (), id="no-ingress-key"),
        pytest.param(ccnp(rule(cidrs("192.0.2.10/32"))), ("192.0.2.10",), id="fromcidr"),
        pytest.param(
            ccnp(rule(cidr_set({"cidr": "198.51.100.7/32"}))), ("198.51.100.7",), id="fromcidrset"
        ),
        pytest.param(
            ccnp(rule(cidr_set({"cidr": "198.51.100.7/32", "except": []}))),
            ("198.51.100.7",),
            id="fromcidrset-empty-except",
        ),
        pytest.param(
            ccnp(rule(cidrs("10.0.0.10/32", "9.0.0.1/32", "10.0.0.9/32"), cidrs("10.0.0.10/32"))),
            ("9.0.0.1", "10.0.0.9", "10.0.0.10"),
            id="sorted-numerically-unique",
        ),
        pytest.param(
            ccnp(rule(cidrs("203.0.113.5/32"), {"fromEntities": ["world"]})),
            ("203.0.113.5",),
            id="documentation-range-and-other-peers",
        ),
        pytest.param(
            ccnp(
                rule(cidrs("192.0.2.1/32")),
                specs=[rule(cidrs("192.0.2.2/32")), rule(cidrs("192.0.2.3/32"))],
            ),
            ("192.0.2.1", "192.0.2.2", "192.0.2.3"),
            id="spec-and-specs-union",
        ),
        pytest.param(
            ccnp(specs=[{"nodeSelector": {}, "ingress": [cidrs("192.0.2.4/32")]}]),
            ("192.0.2.4",),
            id="node-selector-rule-sources-count",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32", "192.0.2.2/32"), deny=[cidrs("192.0.2.2/32")])),
            ("192.0.2.1",),
            id="deny-fromcidr-host",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32", "198.51.100.1/32"), deny=[cidrs("192.0.2.0/24")])),
            ("198.51.100.1",),
            id="deny-fromcidr-range",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32")), specs=[rule(deny=[cidrs("192.0.2.1/32")])]),
            (),
            id="deny-in-other-rule-wins",
        ),
        pytest.param(
            ccnp(
                rule(
                    cidrs("192.0.2.1/32", "192.0.2.2/32"),
                    deny=[cidr_set({"cidr": "192.0.2.0/24", "except": ["192.0.2.2/32"]})],
                )
            ),
            ("192.0.2.2",),
            id="deny-fromcidrset-except",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32"), deny=[{"fromEntities": ["world"]}])),
            (),
            id="deny-world",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32"), deny=[{"fromEntities": ["world-ipv4"]}])),
            (),
            id="deny-world-ipv4",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32"), deny=[{"fromEntities": ["all"]}])), (), id="deny-all"
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32"), deny=[{"fromEntities": ["cluster"]}])),
            ("192.0.2.1",),
            id="deny-cluster-entity-keeps",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32"), deny=[cidrs("2001:db8::/32")])),
            ("192.0.2.1",),
            id="deny-ipv6-keeps-ipv4",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32"), deny=[])), ("192.0.2.1",), id="deny-empty-list"
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32"), deny=[cidrs("192.0.2.9/24")])),
            (),
            id="deny-host-bits-masked",
        ),
    ],
)
def test_sources(raw: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert parse_policy(raw).sources == expected


@pytest.mark.parametrize(
    ("address", "block"),
    [
        pytest.param("0.1.2.3/32", "0.0.0.0/8", id="this-network"),
        pytest.param("127.0.0.1/32", "127.0.0.0/8", id="loopback"),
        pytest.param("169.254.1.1/32", "169.254.0.0/16", id="link-local"),
        pytest.param("224.0.0.251/32", "224.0.0.0/4", id="multicast"),
        pytest.param("255.255.255.255/32", "240.0.0.0/4", id="reserved-and-broadcast"),
    ],
)
def test_default_reserved_ranges(address: str, block: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(ccnp(rule(cidrs("192.0.2.1/32", address))))
    assert caught.value.reason is Reason.VALIDATION_FAILED
    assert caught.value.message == (
        f'{OWNER}: spec.ingress[0].fromCIDR[1] "{address}" is in the reserved range {block}'
    )


def test_custom_reserved_ranges() -> None:
    raw = ccnp(rule(cidrs("127.0.0.1/32"), cidr_set({"cidr": "10.9.8.7/32"})))
    custom = [ipaddress.IPv4Network("10.0.0.0/8")]
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw, reserved=custom)
    assert caught.value.message == (
        f'{OWNER}: spec.ingress[1].fromCIDRSet[0].cidr "10.9.8.7/32" is in the reserved range '
        "10.0.0.0/8"
    )
    assert parse_policy(ccnp(rule(cidrs("127.0.0.1/32"))), reserved=custom).sources == (
        "127.0.0.1",
    )
    assert len(DEFAULT_RESERVED) == 5


def test_identity_and_selectors_skip_node_rules_and_duplicates() -> None:
    node_rule = {"nodeSelector": {"matchLabels": {"type": "worker"}}}
    db = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}
    raw = ccnp(
        rule(),
        specs=[node_rule, {"endpointSelector": db}, {"endpointSelector": WEB}],
        uid="u-1",
        generation=7,
    )
    assert parse_policy(raw) == PolicySpec(
        name=NAME,
        uid="u-1",
        generation=7,
        sources=(),
        selectors=(
            parse_selector(WEB, "spec.endpointSelector", OWNER),
            parse_selector(db, "specs[1].endpointSelector", OWNER),
        ),
    )


def test_missing_uid_and_generation_default() -> None:
    spec = parse_policy(ccnp(rule(), uid=None, generation="3"))
    assert (spec.uid, spec.generation) == ("", 0)


def test_node_selector_only_policy_has_no_selectors() -> None:
    assert parse_policy(ccnp({"nodeSelector": {}})).selectors == ()


S = f"{OWNER}: spec"
I0 = f"{S}.ingress[0]"
D0 = f"{S}.ingressDeny[0]"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(ccnp(), f"{OWNER}: has neither spec nor specs", id="no-spec-no-specs"),
        pytest.param(ccnp(specs=[]), f"{OWNER}: has neither spec nor specs", id="empty-specs"),
        pytest.param(ccnp(["x"]), f'{S} ["x"] is not a rule (a mapping)', id="spec-not-mapping"),
        pytest.param(
            ccnp(specs={"a": 1}),
            f'{OWNER}: specs {{"a": 1}} is not a list of rules',
            id="specs-not-list",
        ),
        pytest.param(
            ccnp(specs=[rule(), "x"]),
            f'{OWNER}: specs[1] "x" is not a rule (a mapping)',
            id="specs-entry-not-mapping",
        ),
        pytest.param(
            ccnp({"ingress": []}),
            f"{S} has neither endpointSelector nor nodeSelector",
            id="no-selector",
        ),
        pytest.param(
            ccnp({"endpointSelector": {}, "nodeSelector": {}}),
            f"{S} has both endpointSelector and nodeSelector",
            id="both-selectors",
        ),
        pytest.param(
            ccnp({"nodeSelector": {"matchLabels": {"a": 1}}}),
            f'{S}.nodeSelector.matchLabels["a"] 1 is not a string (quote label values)',
            id="bad-node-selector",
        ),
        pytest.param(
            ccnp(
                specs=[
                    {
                        "endpointSelector": {
                            "matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]
                        }
                    }
                ]
            ),
            f'{OWNER}: specs[0].endpointSelector.matchExpressions[0].operator "in" is not '
            "In, NotIn, Exists or DoesNotExist",
            id="lowercase-operator-in-specs",
        ),
        pytest.param(
            ccnp({"endpointSelector": WEB, "ingress": {"fromCIDR": []}}),
            f'{S}.ingress {{"fromCIDR": []}} is not a list',
            id="ingress-not-list",
        ),
        pytest.param(ccnp(rule("x")), f'{I0} "x" is not a rule (a mapping)', id="ingress-entry"),
        pytest.param(
            ccnp(rule({"fromCIDR": "192.0.2.1/32"})),
            f'{I0}.fromCIDR "192.0.2.1/32" is not a list',
            id="fromcidr-not-list",
        ),
        pytest.param(
            ccnp(rule(cidrs(3232235777))),
            f"{I0}.fromCIDR[0] 3232235777 is not a string",
            id="fromcidr-entry-int",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/32", "10.0.0.0/24"))),
            f'{I0}.fromCIDR[1] "10.0.0.0/24" is not a single IPv4 address (/32)'
            ": pass --allow-source-ranges to sync ranges",
            id="fromcidr-range",
        ),
        pytest.param(
            ccnp(rule(cidrs("0.0.0.0/0"))),
            f'{I0}.fromCIDR[0] "0.0.0.0/0" is every IPv4 address, which is never synced: only '
            "single addresses (/32) or, with --allow-source-ranges, prefixes up to /8 wide are",
            id="fromcidr-everything",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1"))),
            f'{I0}.fromCIDR[0] "192.0.2.1" has no prefix length (write "192.0.2.1/32")',
            id="bare-ip",
        ),
        pytest.param(
            ccnp(rule(cidrs("2001:db8::1/128"))),
            f'{I0}.fromCIDR[0] "2001:db8::1/128" is IPv6, a family this job does not sync '
            "(--ip-families ipv4): add ipv6 to --ip-families to sync it",
            id="ipv6",
        ),
        pytest.param(
            ccnp(rule(cidrs("${IP_ROBOROCK}/32"))),
            f'{I0}.fromCIDR[0] "${{IP_ROBOROCK}}/32" is an unrendered template value, not a CIDR',
            id="flux-placeholder",
        ),
        pytest.param(
            ccnp(rule(cidrs("${VAR:=127.0.0.1/32}"))),
            f'{I0}.fromCIDR[0] "${{VAR:=127.0.0.1/32}}" is an unrendered template value, '
            "not a CIDR",
            id="placeholder-with-default",
        ),
        pytest.param(
            ccnp(rule(cidrs("{{$cidr}}/{{mask}}"))),
            f'{I0}.fromCIDR[0] "{{{{$cidr}}}}/{{{{mask}}}}" is an unrendered template '
            "value, not a CIDR",
            id="go-template",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/032"))),
            f'{I0}.fromCIDR[0] "192.0.2.1/032" is not a CIDR (address/prefix-length)',
            id="leading-zero-prefix",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.1/255.255.255.255"))),
            f'{I0}.fromCIDR[0] "192.0.2.1/255.255.255.255" is not a CIDR (address/prefix-length)',
            id="netmask-form",
        ),
        pytest.param(
            ccnp(rule(cidrs("192.0.2.256/32"))),
            f'{I0}.fromCIDR[0] "192.0.2.256/32" is not a CIDR (address/prefix-length)',
            id="bad-octet",
        ),
        pytest.param(
            ccnp(rule({"fromCIDRSet": {"cidr": "192.0.2.1/32"}})),
            f'{I0}.fromCIDRSet {{"cidr": "192.0.2.1/32"}} is not a list',
            id="fromcidrset-not-list",
        ),
        pytest.param(
            ccnp(rule(cidr_set("192.0.2.1/32"))),
            f'{I0}.fromCIDRSet[0] "192.0.2.1/32" is not a mapping with a cidr',
            id="fromcidrset-entry-string",
        ),
        pytest.param(
            ccnp(rule(cidr_set({"cidr": "10.0.0.0/8"}))),
            f'{I0}.fromCIDRSet[0].cidr "10.0.0.0/8" is not a single IPv4 address (/32)'
            ": pass --allow-source-ranges to sync ranges",
            id="fromcidrset-range",
        ),
        pytest.param(
            ccnp(rule(cidr_set({"cidrGroupRef": "x"}))),
            f'{I0}.fromCIDRSet[0].cidrGroupRef "x" names no CiliumCIDRGroup: there is no group x',
            id="cidrgroupref",
        ),
        pytest.param(
            ccnp(specs=[rule(), rule(cidr_set({"cidrGroupRef": "x"}))]),
            f'{OWNER}: specs[1].ingress[0].fromCIDRSet[0].cidrGroupRef "x" names no '
            "CiliumCIDRGroup: there is no group x",
            id="cidrgroupref-in-specs",
        ),
        pytest.param(
            ccnp(rule(cidr_set({"except": ["192.0.2.1/32"]}))),
            f'{I0}.fromCIDRSet[0] {{"except": ["192.0.2.1/32"]}} has neither cidr nor cidrGroupRef '
            "nor cidrGroupSelector",
            id="fromcidrset-no-cidr",
        ),
        pytest.param(
            ccnp(rule(cidr_set({"cidr": "192.0.2.1/32", "except": ["192.0.2.1/32"]}))),
            f'{I0}.fromCIDRSet[0].except ["192.0.2.1/32"] is not supported in an allow '
            "rule without --allow-source-ranges: list the allowed addresses in fromCIDR",
            id="allow-except",
        ),
        pytest.param(
            ccnp(rule(deny={"fromCIDR": []})),
            f'{S}.ingressDeny {{"fromCIDR": []}} is not a list',
            id="deny-not-list",
        ),
        pytest.param(
            ccnp(rule(deny=[cidrs("nope/8")])),
            f'{D0}.fromCIDR[0] "nope/8" is not a CIDR (address/prefix-length)',
            id="deny-unparseable",
        ),
        pytest.param(
            ccnp(rule(deny=[cidr_set({"cidr": "10.0.0.0/8", "except": ["x"]})])),
            f'{D0}.fromCIDRSet[0].except[0] "x" is not a CIDR (address/prefix-length)',
            id="deny-bad-except",
        ),
        pytest.param(
            ccnp(rule(deny=[cidr_set({"cidrGroupRef": "g"})])),
            f'{D0}.fromCIDRSet[0].cidrGroupRef "g" names no CiliumCIDRGroup: there is no group g',
            id="deny-cidrgroupref",
        ),
        pytest.param(
            ccnp(rule(deny=[{"fromEntities": "world"}])),
            f'{D0}.fromEntities "world" is not a list',
            id="deny-entities-not-list",
        ),
        pytest.param(
            ccnp(rule(deny=[{"fromEntities": [1]}])),
            f"{D0}.fromEntities[0] 1 is not a string",
            id="deny-entity-not-string",
        ),
    ],
)
def test_validation_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw)
    assert caught.value.reason is Reason.VALIDATION_FAILED
    assert caught.value.message == message


def test_unnamed_policy_error_still_names_kind() -> None:
    with pytest.raises(
        PolicyError, match=r"^CiliumClusterwideNetworkPolicy <unnamed>: has neither"
    ):
        parse_policy({"kind": "CiliumClusterwideNetworkPolicy"})


def _corpus() -> list[Any]:
    cases = []
    for path in sorted(POLICIES.glob("*.yaml")):  # an absent directory yields no cases
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # not valid YAML: the caller reports the parse error, not parse_policy
        for index, doc in enumerate(documents):
            if isinstance(doc, dict) and doc.get("kind") == "CiliumClusterwideNetworkPolicy":
                cases.append(pytest.param(doc, id=f"{path.stem[:60]}#{index}"))
    return cases


CORPUS = _corpus()


@pytest.mark.skipif(not POLICIES.is_dir(), reason=f"policy corpus not found at {POLICIES}")
def test_corpus_is_present() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("document", CORPUS)
def test_real_world_policies_parse_or_fail_cleanly(document: dict[str, Any]) -> None:
    try:
        result = parse_policy(document)
    except PolicyError as error:
        assert error.reason is Reason.VALIDATION_FAILED
        assert error.message.startswith(
            f"CiliumClusterwideNetworkPolicy {document['metadata']['name']}:"
        )
    else:
        assert isinstance(result, PolicySpec)
