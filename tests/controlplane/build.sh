#!/usr/bin/env bash
# Build the test control plane (kube-apiserver and etcd) from their Go modules, once per version.
#
# The binaries land in a cache outside the repository, keyed by version, so a warm run costs
# nothing and a cold one builds once. Prints the directory holding the binaries on stdout.
#
#   KUBERNETES_VERSION   k8s.io/kubernetes release to build          (default v1.36.3)
#   ETCD_VERSION         go.etcd.io/etcd/server/v3 release to build   (default v3.6.8, the one
#                        k8s.io/kubernetes@KUBERNETES_VERSION requires)
#   CONTROL_PLANE_CACHE  cache root (default ${XDG_CACHE_HOME:-~/.cache}/router-policy-sync/control-plane)
set -euo pipefail

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
CACHE_ROOT=${CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/router-policy-sync/control-plane}
OUT="$CACHE_ROOT/kubernetes-$KUBERNETES_VERSION-etcd-$ETCD_VERSION"

log() { echo "build-control-plane: $*" >&2; }

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" ]]; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed; it is needed to build kube-apiserver and etcd"; exit 1; }

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
staging_version="v0.${KUBERNETES_VERSION#v1.}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT.partial"
start=$(date +%s)

# --- kube-apiserver: a wrapper module that pins every staging module k8s.io/kubernetes requires at v0.0.0
log "resolving k8s.io/kubernetes@$KUBERNETES_VERSION"
gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
go_directive=$(awk '$1 == "go" { print $2; exit }' "$gomod")
godebug_directive=$(awk '$1 == "godebug" { print $2; exit }' "$gomod")
mapfile -t staging < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
log "pinning ${#staging[@]} staging modules at $staging_version"

mkdir -p "$work/kas"
cd "$work/kas"
go mod init local/kube-apiserver-build >/dev/null 2>&1
go mod edit -go="$go_directive"
[[ -n "$godebug_directive" ]] && go mod edit -godebug="$godebug_directive"
for module in "${staging[@]}"; do
  go mod edit -replace="$module=$module@$staging_version"
done
go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
go mod tidy >/dev/null
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
log "building kube-apiserver (cold builds take a while)"
go build -trimpath -ldflags "$ldflags" -o "$OUT.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver

# --- etcd: its server module carries replace directives, so it too is built from a wrapper module
mkdir -p "$work/etcd"
cd "$work/etcd"
go mod init local/etcd-build >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
go mod tidy >/dev/null
log "building etcd $ETCD_VERSION"
go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
  -o "$OUT.partial/etcd" go.etcd.io/etcd/server/v3

"$OUT.partial/kube-apiserver" --version >&2
"$OUT.partial/etcd" --version >&2
rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
log "built in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
