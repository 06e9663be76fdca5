"""Test control plane: builds (build.sh) and runs (plane.py) etcd + kube-apiserver for e2e tests."""
