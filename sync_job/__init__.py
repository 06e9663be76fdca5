"""router-policy-sync: converge a MikroTik router with annotated Cilium clusterwide policies."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("router-policy-sync")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
