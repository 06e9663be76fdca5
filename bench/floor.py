"""The floor of a pass: its mandatory reads done with bare httpx/kubernetes calls, nothing else.

`reads(spec)` GETs the three router tables (the job's `.proplist`s, passed in `spec`) with a fresh
httpx client, then lists the cluster with a fresh kubernetes ApiClient built from the kubeconfig:
full CiliumClusterwideNetworkPolicies, RouterPolicies and Services; pods (finished phases left out
by a field selector) and namespaces as metadata only. Every body is parsed with `json.loads`. With a
`snapshot` instead of a kubeconfig, the YAML file is read and parsed.

The bench (bench/runner.py) times `reads` in its own process (the floor) and runs this file as a
fresh process (the floor with process start-up: interpreter, `import kubernetes, httpx`, the same
reads), so a CLI pass can be compared with both. Kept free of `sync_job` imports so that the second
is bare.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx

CCNPS = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
ROUTER_POLICIES = "/apis/router-policy-sync.homelab-helper.benfiola.com/v1/routerpolicies"
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
FULL = "application/json"
METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
LISTS = (
    (CCNPS, None, FULL),
    (ROUTER_POLICIES, None, FULL),
    ("/api/v1/pods", LIVE_PODS, METADATA),
    ("/api/v1/services", None, FULL),
    ("/api/v1/namespaces", None, METADATA),
)


def reads(spec: dict[str, Any]) -> dict[str, Any]:
    """Do the mandatory reads; `spec`: router_url, password, proplists, kubeconfig or snapshot."""
    started = time.perf_counter()
    read = 0
    auth = ("admin", spec["password"])
    with httpx.Client(base_url=spec["router_url"], auth=auth, timeout=60) as http:
        for table, proplist in spec["proplists"].items():
            response = http.get("/" + table, params={".proplist": proplist})
            response.raise_for_status()
            json.loads(response.content)
            read += len(response.content)
    if spec.get("snapshot"):
        import yaml

        with open(spec["snapshot"], encoding="utf-8") as file:
            text = file.read()
        list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        read += len(text)
    else:
        from kubernetes import config

        api = config.new_client_from_config(config_file=spec["kubeconfig"])
        for path, selector, accept in LISTS:
            query = [("fieldSelector", selector)] if selector else []
            verb, url, headers, body, _ = api.param_serialize(
                method="GET",
                resource_path=path,
                query_params=query,
                header_params={"Accept": accept},
                auth_settings=["BearerToken"],
            )
            data = api.call_api(verb, url, header_params=headers, body=body).read()
            json.loads(data)
            read += len(data)
        api.close()
    return {"wall_s": time.perf_counter() - started, "bytes_read": read}


if __name__ == "__main__":
    print(json.dumps(reads(json.loads(sys.argv[1]))))
