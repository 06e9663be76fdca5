#!/usr/bin/env bash
# Build the client tools users install with (kubectl with its built-in kustomize, and helm) from
# their Go modules, once per version, the same way build.sh builds the control plane.
#
# Usage: build-tools.sh kubectl|helm   prints the path of the built binary on stdout.
#
# Each binary lands in a cache outside the repository, keyed by tool and version, so a warm run
# costs nothing and a cold one builds once; the cold build time is kept next to the binary in
# build-seconds.
#
#   KUBECTL_VERSION  k8s.io/kubernetes release whose cmd/kubectl is built (default v1.36.3, the
#                    release of the test kube-apiserver)
#   HELM_VERSION     helm.sh/helm/v4 release whose cmd/helm is built       (default v4.3.2)
#   TOOLS_CACHE      cache root (default ${XDG_CACHE_HOME:-~/.cache}/router-policy-sync/tools)
set -euo pipefail

KUBECTL_VERSION=${KUBECTL_VERSION:-v1.36.3}
HELM_VERSION=${HELM_VERSION:-v4.3.2}
CACHE_ROOT=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/router-policy-sync/tools}

log() { echo "build-tools: $*" >&2; }

tool=${1:-}
case "$tool" in
  kubectl) version=$KUBECTL_VERSION ;;
  helm) version=$HELM_VERSION ;;
  *) log "usage: $0 kubectl|helm"; exit 64 ;;
esac
OUT="$CACHE_ROOT/$tool-$version"

if [[ -x "$OUT/$tool" ]]; then
  log "cached: $OUT/$tool"
  echo "$OUT/$tool"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed; it is needed to build $tool"; exit 1; }

# Two test sessions starting at once: the second waits for the first's build, then uses it.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/$tool-$version.lock"
flock 9
if [[ -x "$OUT/$tool" ]]; then
  log "built meanwhile: $OUT/$tool"
  echo "$OUT/$tool"
  exit 0
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$OUT.partial"
mkdir -p "$OUT.partial"
start=$(date +%s)

build_kubectl() {
  # k8s.io/kubernetes requires its staging modules at v0.0.0 (they are replaced by ./staging in
  # its own tree), so a wrapper module pins each one at the matching v0.<minor>.<patch> release.
  local minor staging_version gomod go_directive godebug_directive ldflags module
  minor=${KUBECTL_VERSION#v1.}; minor=${minor%%.*}
  staging_version="v0.${KUBECTL_VERSION#v1.}"
  log "resolving k8s.io/kubernetes@$KUBECTL_VERSION"
  gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBECTL_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  go_directive=$(awk '$1 == "go" { print $2; exit }' "$gomod")
  godebug_directive=$(awk '$1 == "godebug" { print $2; exit }' "$gomod")
  mapfile -t staging < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
  cd "$work"
  go mod init local/kubectl-build >/dev/null 2>&1
  go mod edit -go="$go_directive"
  [[ -n "$godebug_directive" ]] && go mod edit -godebug="$godebug_directive"
  for module in "${staging[@]}"; do
    go mod edit -replace="$module=$module@$staging_version"
  done
  go mod edit -require="k8s.io/kubernetes@$KUBECTL_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubectl"\n' > tools.go
  go mod tidy >/dev/null
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBECTL_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  log "building kubectl $KUBECTL_VERSION (cold builds take a while)"
  go build -trimpath -ldflags "$ldflags" -o "$OUT.partial/kubectl" k8s.io/kubernetes/cmd/kubectl
  "$OUT.partial/kubectl" version --client >&2
}

build_helm() {
  # helm's module has no replace directives, so a wrapper module that requires it is enough.
  # The -X flags are the ones helm's own Makefile sets for a tagged release.
  local ldflags
  cd "$work"
  go mod init local/helm-build >/dev/null 2>&1
  go mod edit -require="helm.sh/helm/v4@$HELM_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' > tools.go
  go mod tidy >/dev/null
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v4/internal/version.metadata= -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  log "building helm $HELM_VERSION (cold builds take a while)"
  go build -trimpath -ldflags "$ldflags" -o "$OUT.partial/helm" helm.sh/helm/v4/cmd/helm
  "$OUT.partial/helm" version >&2
}

"build_$tool"
echo $(( $(date +%s) - start )) > "$OUT.partial/build-seconds"
rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
log "built in $(cat "$OUT/build-seconds")s: $OUT/$tool"
echo "$OUT/$tool"
