"""Names every bench module shares: the repository, the router password, API paths, the log line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password"
PREFIX = "router-policy-sync"
ANNOTATION = "router-policy-sync.homelab-helper.benfiola.com/sync-with-router"
GROUP = "router-policy-sync.homelab-helper.benfiola.com"
ROUTER_POLICIES = f"/apis/{GROUP}/v1/routerpolicies"
CCNPS = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
MERGE = "application/merge-patch+json"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
