"""Ownership is strict: only names a policy could have written are the tool's.

A comment `<prefix>::marker<anything>` other than the exact marker (a typo, a second marker, a
note), or one whose policy part is not a Kubernetes object name (DNS-1123 subdomain, at most
253 characters), is foreign: never deleted, changed or moved, even with no policy wanting it.
"""

from __future__ import annotations

import pytest

from sync_job.model import Action
from sync_job.router.ownership import Ownership, is_object_name
from sync_job.router.planner import plan_router
from sync_job.router.tables import Table

OWN = Ownership()
MARKER = {".id": "*1", "chain": "forward", "action": "passthrough",
          "comment": "router-policy-sync::marker"}  # fmt: skip

FOREIGN_COMMENTS = [
    "router-policy-sync::marker2",
    "router-policy-sync::marker ",
    "router-policy-sync::marker::tcp",
    "router-policy-sync::markers::tcp::80",
    "router-policy-sync::",  # no policy part
    "router-policy-sync::::tcp",
    "router-policy-sync::Web::tcp",  # uppercase: no object name
    "router-policy-sync::web site::tcp",
    "router-policy-sync::-web::tcp",
    "router-policy-sync::web-::tcp",
    "router-policy-sync::web..a::tcp",
    "router-policy-sync::web_a::tcp",
    "router-policy-sync::" + "a" * 254 + "::tcp",
]


@pytest.mark.parametrize("comment", FOREIGN_COMMENTS)
@pytest.mark.parametrize("table", [Table.FILTER, Table.NAT])
def test_a_near_miss_comment_is_foreign(table: Table, comment: str) -> None:
    assert OWN.owner_policy(table, {"comment": comment}) is None


@pytest.mark.parametrize(
    "name", ["router-policy-sync::", "router-policy-sync::Web", "router-policy-sync::a b",
             "router-policy-sync::" + "a" * 254],
)  # fmt: skip
def test_an_address_list_without_a_valid_policy_name_is_foreign(name: str) -> None:
    assert OWN.owner_policy(Table.ADDRESS_LIST, {"list": name, "address": "192.0.2.1"}) is None


@pytest.mark.parametrize(
    ("comment", "policy"),
    [
        ("router-policy-sync::web::tcp", "web"),
        ("router-policy-sync::a.b-c::udp", "a.b-c"),
        ("router-policy-sync::0web::tcp", "0web"),
        ("router-policy-sync::" + "a" * 253 + "::tcp", "a" * 253),
        ("router-policy-sync::mark::tcp", "mark"),  # "marker" is a prefix of nothing here
    ],
)
def test_names_a_policy_could_have_written_stay_owned(comment: str, policy: str) -> None:
    assert OWN.owner_policy(Table.FILTER, {"comment": comment}) == policy


def test_object_names_follow_dns_1123_subdomains() -> None:
    assert is_object_name("a") and is_object_name("a.b") and is_object_name("a" * 253)
    assert not is_object_name("") and not is_object_name("a" * 254)
    assert not is_object_name("A") and not is_object_name("a.") and not is_object_name(".a")


def test_can_own_refuses_names_that_would_read_back_as_foreign() -> None:
    assert OWN.can_own("web") and not OWN.can_own("marker-web") and not OWN.can_own("Web")


def test_the_planner_never_touches_near_miss_rows() -> None:
    """With no policy wanting anything, an owned orphan is deleted and nothing else is."""
    filter_rows = [MARKER] + [
        {".id": f"*{i + 10:X}", "chain": "forward", "action": "accept", "comment": comment}
        for i, comment in enumerate(FOREIGN_COMMENTS)
    ]
    orphan = {".id": "*F0", "chain": "forward", "action": "accept",
              "comment": "router-policy-sync::gone::tcp"}  # fmt: skip
    nat_rows = [
        {".id": f"*{i + 50:X}", "chain": "dstnat", "action": "dst-nat", "comment": comment}
        for i, comment in enumerate(FOREIGN_COMMENTS)
    ]
    lists = [{".id": "*A0", "list": "router-policy-sync::Web", "address": "192.0.2.9"}]
    tables = {Table.FILTER: [*filter_rows, orphan], Table.NAT: nat_rows,
              Table.ADDRESS_LIST: lists}  # fmt: skip
    plan = plan_router([], tables, OWN, set())
    assert [(c.action, c.id) for c in plan.changes] == [(Action.DELETE, "*F0")]
