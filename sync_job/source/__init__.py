"""READ: what the cluster (or `--from-file`) says, and what each annotated policy asks for.

snapshot (the typed ClusterSnapshot), cluster (the live API lists), file (`--from-file`),
cilium (one policy's sources), selectors (Cilium endpoint selectors), discovery (the gateway
Service and its ports), evaluate (every policy into an outcome and, when it passed, a target),
limits (the size caps).
"""
