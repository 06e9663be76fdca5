"""Bad input never crashes the command and never touches another policy's router objects.

Every case runs the real command (`sync --from-file`) against the emulator on 127.0.0.1, with the
bad input in the same file as the valid example policy `my-policy`, which was synced before:

- every file of the shared Cilium policy corpus, with each CiliumClusterwideNetworkPolicy in it
  annotated;
- 60+ malformed inputs of our own: broken YAML, wrong types, missing fields, huge lists, names
  Kubernetes or RouterOS would reject, lower-case selector operators, ports as names, endPort,
  protocol ANY, IPv6, `${VAR}` placeholders, the empty policy, ...

Each must give a clear reason naming the object and the field (a whole-file problem names the
file), never a traceback (`run_cli` checks stderr, and that the sentinel password never shows),
and `my-policy` must stay Synced with its router objects byte for byte as they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sync_job.router.client import RouterSettings, RouterWriter, make_http_client
from sync_job.run import SyncSettings, run_once
from sync_job.source.file import load_snapshot
from sync_job.source.snapshot import ANNOTATION
from tests.support.router import ADDRESS_LIST, FILTER, FIXTURES, NAT, PASSWORD, Router, run_cli

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()
CORPUS = FIXTURES / "cilium" / "policies"
CORPUS_FILES = sorted(CORPUS.glob("*.yaml"))
VALID = "my-policy"
CCNP = "CiliumClusterwideNetworkPolicy"
LINE = re.compile(r"^  (?P<name>.*): (?P<state>Ready|NOT ready) \((?P<reason>\w+)\) (?P<msg>.*)$")


# -- the baseline: my-policy synced, and its router objects -----------------------------------


def valid_objects(router: Router) -> dict[str, list[dict[str, str]]]:
    """Every router row of my-policy, exactly as GET shows it, in table order."""
    return {
        table: [
            row
            for row in router.emulator.rows(table)
            if row.get("comment", "").startswith(f"router-policy-sync::{VALID}::")
            or row.get("list") == f"router-policy-sync::{VALID}"
        ]
        for table in (FILTER, NAT, ADDRESS_LIST)
    }


@pytest.fixture
def synced(router: Router, tmp_path: Path) -> Iterator[Router]:
    """The router after a clean pass of the example; checks my-policy is untouched at the end."""
    path = tmp_path / "example.yaml"
    path.write_text(EXAMPLE)
    settings = RouterSettings(router.url, "admin", PASSWORD)
    with make_http_client(settings) as http:
        report = run_once(
            read_cluster=lambda: load_snapshot(path),
            router=RouterWriter(http, settings),
            kube=None,
            settings=SyncSettings(),
            check=False,
            now=lambda: datetime.now(UTC),
        )
    assert not report.failed
    before = valid_objects(router)
    assert [len(rows) for rows in before.values()] == [2, 3, 3]
    router.emulator.reset_counts()
    yield router
    assert valid_objects(router) == before, "my-policy's router objects changed"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    lines: dict[str, dict[str, str]] = field(default_factory=dict)


def sync_file(router: Router, path: Path, *extra: str) -> Outcome:
    result = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url, "--log-level",
        "debug", *extra,
    )  # fmt: skip
    outcome = Outcome(result.code, result.stdout, result.stderr)
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        if match:
            outcome.lines[match["name"]] = match.groupdict()
    return outcome


def with_example(tmp_path: Path, bad: str | bytes) -> Path:
    path = tmp_path / "cluster.yaml"
    if isinstance(bad, bytes):
        path.write_bytes(bad + b"\n---\n" + EXAMPLE.encode())
    else:
        path.write_text(bad.rstrip("\n") + "\n---\n" + EXAMPLE)
    return path


# -- the shared corpus ------------------------------------------------------------------------


def annotate(text: str) -> str:
    """Every CCNP of a corpus file with the sync annotation added (the file as is when it is
    not YAML: that is part of what is tested)."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return text
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == CCNP:
            metadata = document.setdefault("metadata", {})
            metadata["annotations"] = {**(metadata.get("annotations") or {}), ANNOTATION: "true"}
    return yaml.safe_dump_all(documents, sort_keys=False)


def test_the_corpus_is_all_there() -> None:
    assert len(CORPUS_FILES) == 37


@pytest.mark.parametrize("source", CORPUS_FILES, ids=lambda p: p.name[:60])
def test_every_corpus_file_gives_a_clear_outcome(
    synced: Router, tmp_path: Path, source: Path
) -> None:
    text = annotate(source.read_text())
    outcome = sync_file(synced, with_example(tmp_path, text))
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        # Not YAML at all (a Go template): the file is refused as a whole, naming it and the
        # line; nothing is written.
        assert outcome.code == 1
        assert f"{tmp_path / 'cluster.yaml'} is not valid YAML" in outcome.stderr
        assert "line" in outcome.stderr and "nothing was written" in outcome.stderr
        return
    names = [
        d["metadata"]["name"] for d in documents if isinstance(d, dict) and d.get("kind") == CCNP
    ]
    assert set(outcome.lines) == {VALID, *names}
    assert outcome.lines[VALID]["state"] == "Ready"
    for name in names:
        line = outcome.lines[name]
        if line["state"] == "Ready":
            continue  # e.g. endpointSelector {} with no /32 source: valid, an empty list
        assert line["reason"] in ("ValidationFailed", "DiscoveryFailed")
        assert f"{CCNP} {name}" in line["msg"]  # names the object ...
        assert (
            re.search(r"\b(spec|specs\[\d+\])\b", line["msg"])
            or "endpointSelector" in (line["msg"])
        )  # ... and the field
    assert outcome.code == (0 if all(v["state"] == "Ready" for v in outcome.lines.values()) else 1)


# -- malformed inputs of our own ------------------------------------------------------------------


def policy(name: str | None = "bad", **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"annotations": {ANNOTATION: "true"}}
    if name is not None:
        metadata["name"] = name
    body = {"endpointSelector": {"matchLabels": {"app": "web"}}, **spec}
    return {"apiVersion": "cilium.io/v2", "kind": CCNP, "metadata": metadata, "spec": body}


def ingress(*cidrs: Any) -> list[dict[str, Any]]:
    return [{"fromCIDR": list(cidrs)}]


def dump(*documents: Any) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def bad_service(ports: Any, ip: str = "10.0.0.9") -> str:
    """A policy selecting its own pod, whose LoadBalancer Service is the bad part."""
    return dump(
        policy(endpointSelector={"matchLabels": {"app": "bad"}}, ingress=ingress("192.0.2.9/32")),
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "bad-0", "namespace": "default", "labels": {"app": "bad"}},
         "status": {"phase": "Running"}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "bad-svc", "namespace": "default"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "bad"}, "ports": ports},
         "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}},
    )  # fmt: skip


def alias_bomb() -> str:
    """A billion-laughs style policy: 10^6 logical entries from a few lines of YAML aliases."""
    lines = ['a0: &a0 ["203.0.113.1/32"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    return (
        "\n".join(lines)
        + f"""
apiVersion: cilium.io/v2
kind: {CCNP}
metadata: {{name: bad, annotations: {{{ANNOTATION}: "true"}}}}
spec:
  endpointSelector: {{matchLabels: {{app: web}}}}
  ingress:
    - fromCIDR: *a6
"""
    )


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes
    name: str  # the policy (or "" for a whole-file failure) whose line must explain
    reason: str  # ValidationFailed / DiscoveryFailed, or "file" for a whole-file failure
    says: tuple[str, ...]  # fragments the explanation must contain (object and field)


def v(id: str, doc: Any, *says: str, name: str = "bad", reason: str = "ValidationFailed") -> Case:
    text = doc if isinstance(doc, str) else dump(doc)
    return Case(id, text, name, reason, says)


def whole_file(id: str, text: str | bytes, *says: str) -> Case:
    return Case(id, text, "", "file", says)


OWNER = f"{CCNP} bad:"
NAME = "metadata.name is not a DNS-1123 subdomain"
BIG = [f"198.51.100.{i % 250 + 1}/32" for i in range(20_000)]

CASES = [
    # Whole-file problems: named with the file; nothing at all is written.
    whole_file("yaml-unclosed-flow", f"kind: {CCNP}\nmetadata: {{name: x\n", "not valid YAML"),
    whole_file("yaml-tab-indent", f"kind: {CCNP}\nmetadata:\n\tname: x\n", "not valid YAML"),
    whole_file("yaml-bad-indent", "spec:\n    a: 1\n  b: 2\n", "not valid YAML", "line 3"),
    whole_file("yaml-unterminated-quote", 'metadata: {name: "x}\n', "not valid YAML"),
    whole_file("document-is-a-list", "- a\n- b\n", "document 1 is not a mapping"),
    whole_file("document-is-a-string", "just words\n", "document 1 is not a mapping"),
    whole_file("list-items-not-a-list", "kind: List\nitems: abc\n", "items is not a list"),
    # The rules of a policy.
    v(
        "empty-policy",
        {"kind": CCNP, "metadata": {"name": "bad", "annotations": {ANNOTATION: ""}}},
        OWNER,
        "has neither spec nor specs",
    ),
    v("empty-spec", policy() | {"spec": {}}, OWNER, "spec has neither endpointSelector"),
    v("spec-null-specs-empty", policy() | {"spec": None, "specs": []}, OWNER, "neither spec"),
    v("spec-a-string", policy() | {"spec": "allow all"}, OWNER, 'spec "allow all" is not a rule'),
    v("specs-a-mapping", policy() | {"specs": {"a": 1}}, OWNER, "specs", "is not a list of rules"),
    v("specs-entry-empty", policy() | {"specs": [{}]}, OWNER, "specs[0] has neither"),
    v("both-selectors", policy(nodeSelector={}), OWNER, "spec has both endpointSelector and"),
    v(
        "ingress-a-mapping",
        policy(ingress={"fromCIDR": ["192.0.2.9/32"]}),
        OWNER,
        "spec.ingress",
        "is not a list",
    ),
    v("ingress-entry-null", policy(ingress=[None]), OWNER, "spec.ingress[0] null is not a rule"),
    v("ingress-deny-a-string", policy(ingressDeny="world"), OWNER, 'spec.ingressDeny "world"'),
    # Sources.
    v(
        "fromCIDR-a-string",
        policy(ingress=[{"fromCIDR": "192.0.2.9/32"}]),
        OWNER,
        'spec.ingress[0].fromCIDR "192.0.2.9/32" is not a list',
    ),
    v(
        "fromCIDR-an-int",
        policy(ingress=ingress(42)),
        OWNER,
        "spec.ingress[0].fromCIDR[0] 42 is not a string",
    ),
    v("fromCIDR-null", policy(ingress=ingress(None)), OWNER, "fromCIDR[0] null is not a string"),
    v(
        "fromCIDR-a-/24",
        policy(ingress=ingress("192.0.2.9/32", "198.51.100.0/24")),
        OWNER,
        'fromCIDR[1] "198.51.100.0/24" is not a single IPv4 address (/32)',
    ),
    v("fromCIDR-everything", policy(ingress=ingress("0.0.0.0/0")), OWNER, "fromCIDR[0]", "/32"),
    v(
        "fromCIDR-no-prefix",
        policy(ingress=ingress("192.0.2.9")),
        OWNER,
        'fromCIDR[0] "192.0.2.9" has no prefix length (write "192.0.2.9/32")',
    ),
    v(
        "fromCIDR-leading-zeros",
        policy(ingress=ingress("192.0.2.009/32")),
        OWNER,
        "fromCIDR[0]",
        "is not a CIDR",
    ),
    v(
        "fromCIDR-trailing-space",
        policy(ingress=ingress("192.0.2.9/32 ")),
        OWNER,
        "fromCIDR[0]",
        "is not a CIDR",
    ),
    v(
        "fromCIDR-hostname",
        policy(ingress=ingress("home.example.com/32")),
        OWNER,
        "fromCIDR[0]",
        "is not a CIDR",
    ),
    v(
        "fromCIDR-ipv6",
        policy(ingress=ingress("2001:db8::1/128")),
        OWNER,
        'fromCIDR[0] "2001:db8::1/128" is IPv6',
    ),
    v(
        "fromCIDR-ipv4-mapped-ipv6",
        policy(ingress=ingress("::ffff:192.0.2.9/128")),
        OWNER,
        "fromCIDR[0]",
        "is IPv6",
    ),
    v(
        "fromCIDR-${VAR}",
        policy(ingress=ingress("${HOME_IP}/32")),
        OWNER,
        'fromCIDR[0] "${HOME_IP}/32" is an unrendered template value',
    ),
    v(
        "fromCIDR-${VAR:=default}",
        policy(ingress=ingress("${IP:=192.0.2.9/32}")),
        OWNER,
        "fromCIDR[0]",
        "unrendered template",
    ),
    v(
        "fromCIDR-go-template",
        policy(ingress=ingress("{{ .Values.ip }}/32")),
        OWNER,
        "fromCIDR[0]",
        "unrendered template",
    ),
    v(
        "fromCIDR-reserved-loopback",
        policy(ingress=ingress("127.0.0.1/32")),
        OWNER,
        "fromCIDR[0]",
        "in the reserved range 127.0.0.0/8",
    ),
    v(
        "fromCIDR-reserved-multicast",
        policy(ingress=ingress("224.0.0.251/32")),
        OWNER,
        "in the reserved range 224.0.0.0/4",
    ),
    v(
        "fromCIDRSet-${VAR}",
        policy(ingress=[{"fromCIDRSet": [{"cidr": "${IP_ROBOROCK}/32"}]}]),
        OWNER,
        "spec.ingress[0].fromCIDRSet[0].cidr",
        "unrendered template",
    ),
    v(
        "fromCIDRSet-cidrGroupRef",
        policy(ingress=[{"fromCIDRSet": [{"cidrGroupRef": "home"}]}]),
        OWNER,
        "fromCIDRSet[0].cidrGroupRef",
        "names no CiliumCIDRGroup",
    ),
    v(
        "fromCIDRSet-except",
        policy(ingress=[{"fromCIDRSet": [{"cidr": "192.0.2.9/32", "except": ["192.0.2.9/32"]}]}]),
        OWNER,
        "fromCIDRSet[0].except",
        "is not supported",
    ),
    v(
        "fromCIDRSet-no-cidr",
        policy(ingress=[{"fromCIDRSet": [{"except": []}]}]),
        OWNER,
        "fromCIDRSet[0]",
        "has neither cidr nor cidrGroupRef",
    ),
    v(
        "fromCIDRSet-a-string",
        policy(ingress=[{"fromCIDRSet": ["192.0.2.9/32"]}]),
        OWNER,
        "fromCIDRSet[0]",
        "is not a mapping",
    ),
    v(
        "ingressDeny-bad-cidr",
        policy(ingressDeny=[{"fromCIDR": ["nope"]}]),
        OWNER,
        'spec.ingressDeny[0].fromCIDR[0] "nope" is not a CIDR',
    ),
    v(
        "ingressDeny-entity-an-int",
        policy(ingressDeny=[{"fromEntities": [7]}]),
        OWNER,
        "spec.ingressDeny[0].fromEntities[0] 7 is not a string",
    ),
    v(
        "huge-fromCIDR-one-bad-at-the-end",
        policy(ingress=ingress(*BIG, "203.0.113.0/31")),
        OWNER,
        f'spec.ingress[0].fromCIDR[{len(BIG)}] "203.0.113.0/31"',
    ),
    v(
        "huge-specs-list",
        policy() | {"spec": None, "specs": [{"nodeSelector": {}}] * 5000},
        f"{CCNP} bad has no rule with an endpointSelector",
        reason="DiscoveryFailed",
    ),
    v(
        "huge-matchLabels",
        policy(endpointSelector={"matchLabels": {f"k{i}": "v" for i in range(5000)}}),
        f"no running pod matches spec.endpointSelector of {CCNP} bad",
        reason="DiscoveryFailed",
    ),
    v("alias-bomb", alias_bomb(), OWNER, "spec.ingress[0].fromCIDR[0]", "is not a string"),
    # Selectors.
    v(
        "operator-in-lower-case",
        policy(
            endpointSelector={
                "matchExpressions": [{"key": "app", "operator": "in", "values": ["web"]}]
            }
        ),
        OWNER,
        'spec.endpointSelector.matchExpressions[0].operator "in" is not In, NotIn',
    ),
    v(
        "operator-exists-lower-case",
        policy(endpointSelector={"matchExpressions": [{"key": "app", "operator": "exists"}]}),
        OWNER,
        'matchExpressions[0].operator "exists"',
    ),
    v(
        "operator-missing",
        policy(endpointSelector={"matchExpressions": [{"key": "app"}]}),
        OWNER,
        "matchExpressions[0].operator null",
    ),
    v(
        "In-without-values",
        policy(endpointSelector={"matchExpressions": [{"key": "app", "operator": "In"}]}),
        OWNER,
        "matchExpressions[0].values null must be a non-empty list for In",
    ),
    v(
        "Exists-with-values",
        policy(
            endpointSelector={
                "matchExpressions": [{"key": "app", "operator": "Exists", "values": ["web"]}]
            }
        ),
        OWNER,
        "matchExpressions[0].values",
        "must be empty for Exists",
    ),
    v(
        "matchExpressions-a-mapping",
        policy(endpointSelector={"matchExpressions": {"key": "a"}}),
        OWNER,
        "spec.endpointSelector.matchExpressions",
        "is not a list",
    ),
    v(
        "matchLabels-a-list",
        policy(endpointSelector={"matchLabels": ["app=web"]}),
        OWNER,
        "spec.endpointSelector.matchLabels",
        "is not a mapping",
    ),
    v(
        "matchLabels-value-an-int",
        f"""
apiVersion: cilium.io/v2
kind: {CCNP}
metadata: {{name: bad, annotations: {{{ANNOTATION}: "true"}}}}
spec:
  endpointSelector: {{matchLabels: {{app: web, tier: 1}}}}
""",
        OWNER,
        'spec.endpointSelector.matchLabels["tier"] 1 is not a string',
    ),
    v(
        "selector-key-empty",
        policy(endpointSelector={"matchLabels": {"": "web"}}),
        OWNER,
        'matchLabels[""]',
        "is not a non-empty label key",
    ),
    v(
        "selector-a-string",
        policy(endpointSelector="app=web"),
        OWNER,
        'spec.endpointSelector "app=web" is not a label selector',
    ),
    # Names Kubernetes (and so the router's list names and comments) would reject.
    v("name-upper-case", policy("Bad-Policy"), f"{CCNP} 'Bad-Policy': {NAME}", name="Bad-Policy"),
    v("name-underscore", policy("bad_policy"), f"{CCNP} 'bad_policy': {NAME}", name="bad_policy"),
    v("name-double-colon", policy("bad::policy"), NAME, name="bad::policy"),
    v("name-space", policy("bad policy"), NAME, name="bad policy"),
    v("name-non-ascii", policy("pölicy"), NAME, name="pölicy"),
    v("name-leading-dash", policy("-bad"), NAME, name="-bad"),
    v("name-254-chars", policy("a" * 254), NAME, "at most 253 characters", name="a" * 254),
    v("name-empty", policy(""), f"{CCNP}: metadata.name is missing", name=""),
    v("name-missing", policy(None), f"{CCNP}: metadata.name is missing", name=""),
    v(
        "name-twice",
        dump(
            policy("twice", ingress=ingress("192.0.2.9/32")),
            policy("twice", ingress=ingress("192.0.2.10/32")),
        ),
        f"{CCNP} 'twice': metadata.name is used by 2 policies",
        name="twice",
    ),
    # The gateway Service's ports: the router's ports come from there.
    v(
        "port-as-a-name",
        bad_service([{"name": "http", "port": "http", "protocol": "TCP"}]),
        'Service default/bad-svc: spec.ports[0].port "http" is not a port number',
    ),
    v(
        "port-as-a-numeric-string",
        bad_service([{"port": "80", "protocol": "TCP"}]),
        'spec.ports[0].port "80" is not a port number from 1 to 65535',
    ),
    v("port-out-of-range", bad_service([{"port": 70000}]), "spec.ports[0].port 70000"),
    v("port-zero", bad_service([{"port": 80}, {"port": 0}]), "spec.ports[1].port 0"),
    v("port-a-float", bad_service([{"port": 80.0}]), "spec.ports[0].port 80.0"),
    v(
        "protocol-ANY",
        bad_service([{"port": 80, "protocol": "ANY"}]),
        'Service default/bad-svc: spec.ports[0].protocol "ANY" is not TCP, UDP or SCTP',
    ),
    v(
        "protocol-lower-case",
        bad_service([{"port": 80, "protocol": "tcp"}]),
        'spec.ports[0].protocol "tcp" is not TCP, UDP or SCTP',
    ),
    v("ports-empty", bad_service([]), "Service default/bad-svc: spec.ports is empty"),
    v("ports-a-mapping", bad_service({"port": 80}), "Service default/bad-svc: spec.ports is empty"),
    v("port-entry-a-string", bad_service(["80/TCP"]), 'spec.ports[0] "80/TCP" is not a mapping'),
    v(
        "gateway-ipv6-only",
        bad_service([{"port": 80}], ip="2001:db8::5"),
        "LoadBalancer Service default/bad-svc has no IPv4 ingress IP",
        reason="DiscoveryFailed",
    ),
]

# Files whose objects have the wrong shape where the snapshot reads them, or that are not
# text: the whole file is refused with the object and field named, before anything is written.
CRASHES = [
    pytest.param(b"\xff\xfe\x00 not text", "UTF-8", id="non-utf8-bytes"),
    pytest.param(f"kind: {CCNP}\nmetadata: [a, b]\nspec: {{}}\n", "metadata",
                 id="ccnp-metadata-a-list"),
    pytest.param("kind: Pod\nmetadata: [1]\n", "metadata", id="pod-metadata-a-list"),
    pytest.param("kind: Pod\nmetadata: {name: p}\nspec: hello\n", "spec",
                 id="pod-spec-a-string"),
    pytest.param("kind: Service\nmetadata: {name: s}\nspec: [1]\n", "spec",
                 id="service-spec-a-list"),
    pytest.param("kind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer}\nstatus: up\n",
                 "status", id="service-status-a-string"),
    pytest.param("kind: Namespace\nmetadata: {name: n, labels: [1]}\n", "labels",
                 id="namespace-labels-a-list"),
    pytest.param("kind: Namespace\nmetadata: default\n", "metadata",
                 id="namespace-metadata-a-string"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "field_name"), CRASHES)
def test_non_mapping_objects_and_non_text_files_do_not_crash(
    synced: Router, tmp_path: Path, text: str | bytes, field_name: str
) -> None:
    outcome = sync_file(synced, with_example(tmp_path, text))
    assert outcome.code == 1  # run_cli has already checked: no traceback
    assert field_name in outcome.stderr and "nothing was written" in outcome.stderr
    assert synced.writes() == 0


def test_there_are_at_least_30_malformed_inputs() -> None:
    assert len(CASES) >= 30 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_input_gives_a_clear_reason_and_harms_nothing(
    synced: Router, tmp_path: Path, case: Case
) -> None:
    outcome = sync_file(synced, with_example(tmp_path, case.text))
    assert outcome.code == 1
    if case.reason == "file":
        message = outcome.stderr
        assert str(tmp_path / "cluster.yaml") in message and "nothing was written" in message
        assert synced.writes() == 0
    else:
        assert outcome.lines[VALID]["state"] == "Ready", outcome.stdout
        line = outcome.lines[case.name]
        assert (line["state"], line["reason"]) == ("NOT ready", case.reason), line
        message = line["msg"]
        # Nothing of the failed policy reached the router.
        assert not [
            row
            for table in (FILTER, NAT, ADDRESS_LIST)
            for row in synced.emulator.rows(table)
            if "::bad" in row.get("comment", "") + row.get("list", "")
        ]
        assert synced.writes() == 0  # my-policy was in sync already
    for fragment in case.says:
        assert fragment in message, (fragment, message)
    assert len(message) < 1000  # a reason, not a dump: long values are shortened
    assert "Traceback" not in outcome.stderr


def test_a_253_character_name_is_accepted(synced: Router, tmp_path: Path) -> None:
    """The longest name Kubernetes allows becomes a 273-character list name and comments."""
    name = ".".join(["a" * 63] * 4)[:253]
    assert len(name) == 253
    text = dump(policy(name, ingress=ingress("192.0.2.9/32")))
    outcome = sync_file(synced, with_example(tmp_path, text))
    assert outcome.code == 0 and outcome.lines[name]["state"] == "Ready"
    lists = {row["list"] for row in synced.emulator.rows(ADDRESS_LIST)}
    assert f"router-policy-sync::{name}" in lists


@pytest.mark.parametrize(
    ("to_ports", "opened"),
    [
        ([{"ports": [{"port": "80", "endPort": 444, "protocol": "TCP"}]}], "on tcp 80,443;"),
        ([{"ports": [{"port": "1", "endPort": "65535", "protocol": "TCP"}]}], "on tcp 80,443;"),
        ([{"ports": [{"port": "443", "protocol": "ANY"}]}], "on tcp 443;"),
        ([{"ports": [{"port": "53"}]}], "on udp 53;"),
        ([{"ports": [{"port": "http"}]}], "spec.ingress[0] opens no port of the gateway"),
    ],
    ids=["endPort", "endPort-string", "protocol-ANY", "no-protocol", "port-as-an-unknown-name"],
)
def test_policy_to_ports_narrow_the_service_ports(
    synced: Router, tmp_path: Path, to_ports: list[dict[str, Any]], opened: str
) -> None:
    """A source allowed only to some ports gets only those of the gateway Service (tcp 80, 443
    and udp 53 here), matched by target port as Cilium matches them (ranges, ANY, no protocol);
    a named port no pod declares opens nothing, and the status says so."""
    text = dump(policy("ranged", ingress=[{"fromCIDR": ["192.0.2.9/32"], "toPorts": to_ports}]))
    outcome = sync_file(synced, with_example(tmp_path, text))
    assert outcome.code == 0 and outcome.lines["ranged"]["state"] == "Ready"
    assert opened in outcome.lines["ranged"]["msg"]


def test_all_malformed_policies_at_once_leave_the_valid_one_alone(
    synced: Router, tmp_path: Path
) -> None:
    """Every policy-level case in one file: each still gets its own reason."""
    policy_cases = [c for c in CASES if c.reason != "file" and c.name == "bad" and not (
        isinstance(c.text, str) and ("kind: Pod" in c.text or "&a0" in c.text))]  # fmt: skip
    documents: list[Any] = []
    for index, case in enumerate(policy_cases):
        assert isinstance(case.text, str)
        document = yaml.safe_load(case.text)
        document["metadata"]["name"] = f"bad-{index}"
        documents.append(document)
    outcome = sync_file(synced, with_example(tmp_path, dump(*documents)))
    assert outcome.code == 1 and outcome.lines[VALID]["state"] == "Ready"
    for index, case in enumerate(policy_cases):
        line = outcome.lines[f"bad-{index}"]
        assert line["reason"] == case.reason, (case.id, line)
        for fragment in case.says:
            assert fragment.replace(" bad", f" bad-{index}") in line["msg"], (case.id, line)
    assert synced.writes() == 0


def test_check_mode_on_bad_input_reads_only(synced: Router, tmp_path: Path) -> None:
    text = dump(policy(ingress=ingress("${HOME_IP}/32")))
    outcome = sync_file(synced, with_example(tmp_path, text), "--check")
    assert outcome.code == 1  # a failure wins over drift
    assert {method for method, _ in synced.emulator.requests} == {"GET"}


def test_an_unreachable_file_is_a_usage_error(synced: Router, tmp_path: Path) -> None:
    outcome = sync_file(synced, tmp_path / "missing.yaml")
    assert outcome.code == 64 and "missing.yaml" in outcome.stderr


def test_the_router_url_is_never_printed_with_credentials(tmp_path: Path) -> None:
    """A password pasted into the URL never reaches the logs."""
    path = with_example(tmp_path, "")
    result = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url",
        f"http://admin:{PASSWORD}@127.0.0.1:9/rest", "--mikrotik-timeout", "0.2",
        "--log-level", "debug", env={"MIKROTIK_PASSWORD": "other"},
    )  # fmt: skip
    assert result.code == 1 and "http://127.0.0.1:9/rest is plain HTTP" in result.stderr
    assert httpx.URL(f"http://admin:{PASSWORD}@127.0.0.1:9/rest").password == PASSWORD
