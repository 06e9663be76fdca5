"""Benchmark of one `router-policy-sync sync` pass: scenario S at S/10, S and S×3.

Scenario S (scaled by `f`): 300 annotated CiliumClusterwideNetworkPolicies, each with 10 /32
sources, 4 pods and a LoadBalancer Service on tcp 80, tcp 443 and udp 53; 3,000 pods and 600
Services in all (the rest are other workloads: 100 LoadBalancer and 200 ClusterIP Services with 6
pods each); a router holding 3,000 foreign filter rules, 500 foreign NAT rules, 50,000 foreign
address-list entries and the marker. Pods look like kubelet-managed pods (owner reference, probes,
projected token volume, Running status with container statuses), so list sizes are realistic.

Every measured pass is the real CLI in a subprocess (`python -m sync_job sync --no-lease ...`),
against the RouterOS emulator served by this process on 127.0.0.1 and a real kube-apiserver +
etcd (tests/controlplane/plane.py) on 127.0.0.1, or, when that cannot start or with
`--source snapshot`, against a YAML snapshot (`--from-file`). Per pass:

- router requests by method and router bytes: counted by the emulator (`BenchEmulator.handle`
  in bench/router.py);
- API requests by verb and API bytes: counted inside the job process by a `sitecustomize` module
  the bench puts on the job's PYTHONPATH (bench/api_counter.py), which wraps urllib3, the
  kubernetes client's HTTP library: every request by method and path, and every reply body's
  bytes. The command line is the real CLI; a GET of a collection counts as a LIST. (The
  apiserver's own `apiserver_request_total` metric cannot be used: its background repair loops
  list Services too, and it does not say which client asked.)
- wall time, CPU time (user+sys) and peak RSS of the job process, from `os.wait4` in a small
  helper process (`Launcher`: Linux carries the parent's peak RSS across fork and exec).

Each kind of pass is repeated `--runs` times (the first run after resetting the router and
deleting the RouterPolicies) and the median is reported. The router writes of the first run are
checked against the objects created (15 per policy), those of the small change (one policy gains
a source, another policy's Service moves tcp 443 to another port) against the 4 changed objects.

The floor (bench/floor.py) is the least I/O a pass must do, done between passes: the three
router tables with the job's `.proplist` (a fresh httpx client), and the five API lists as raw
`kubernetes` ApiClient calls (a fresh client from the kubeconfig) asking for no more than a pass
needs: full CiliumClusterwideNetworkPolicies, RouterPolicies and Services, pods and namespaces as
metadata only (`as=PartialObjectMetadataList`, pods with the finished-phase field selector); every
body is parsed with `json.loads`. It is timed twice: in this process (no start-up, the issue's
floor) and as a fresh `python bench/floor.py` process (interpreter start, `import kubernetes,
httpx`, the same reads), since a CLI pass cannot avoid starting a process.

Run `python -m bench --help` (from the repository root) for the options; results go to stdout
(table) and a JSON file (bench/results.json). Importing the package does nothing; the modules:
`scenario` (the cluster objects), `router` (the emulator and its seed), `cluster` (the control
plane and API counts), `runner` (one pass in a subprocess, the floor), `passes` (the passes of a
scale), `latency` (the passes at a router's speed and the foreign-rows RSS), `startup` (`--help`
timing), `targets` (PASS/FAIL), `report` (table and JSON), `cli`.
"""
