#!/usr/bin/env bash
# Provide etcd, kube-apiserver and kube-controller-manager for tests and the demo.
#
# Order (the envtest convention first): $KUBEBUILDER_ASSETS, then $PATH, otherwise build
# kube-apiserver/kube-controller-manager 1.20.2 once from Debian's `kubernetes` source
# package (see shared/reference/control-plane.md) and cache them.
#
# Prints the folder holding the binaries on its last line of stdout. A KUBEBUILDER_ASSETS
# folder needs only etcd and kube-apiserver (envtest's bundles have no controller manager):
# the control plane then runs without one, so without garbage collection, and the tests
# that need it are skipped, saying so.
set -euo pipefail

CACHE="${SCENE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scene-operator}"
BIN="$CACHE/control-plane-1.20.2-p1"

have_all() { [ -x "$1/etcd" ] && [ -x "$1/kube-apiserver" ] && [ -x "$1/kube-controller-manager" ]; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if have_all "$BIN"; then echo "$BIN"; exit 0; fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_ready=0
apt_install() {
  if [ "$apt_ready" = 0 ]; then
    if [ -f /etc/apt/sources.list.d/debian.sources ] && [ ! -f /etc/apt/sources.list.d/debian-src.sources ]; then
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        | as_root tee /etc/apt/sources.list.d/debian-src.sources >/dev/null
    fi
    as_root apt-get update -qq >&2
    apt_ready=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >&2
}

mkdir -p "$BIN"
# etcd: PATH first, else Debian's etcd-server.
if ! command -v etcd >/dev/null 2>&1; then apt_install etcd-server; fi
ln -sfn "$(command -v etcd)" "$BIN/etcd"

if command -v kube-apiserver >/dev/null 2>&1 && command -v kube-controller-manager >/dev/null 2>&1; then
  ln -sfn "$(command -v kube-apiserver)" "$BIN/kube-apiserver"
  ln -sfn "$(command -v kube-controller-manager)" "$BIN/kube-controller-manager"
  echo "$BIN"; exit 0
fi

# One build at a time (parallel set-ups share the cache): wait for a build under way.
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9
if have_all "$BIN"; then echo "$BIN"; exit 0; fi

echo "building kube-apiserver 1.20.2 from Debian's source package (about 5 minutes, once)" >&2
apt_install golang-go rsync golang-github-modern-go-reflect2-dev make
WORK="$CACHE/build"
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
apt-get source --download-only kubernetes >&2
mkdir k8s && tar xzf kubernetes_*.orig.tar.gz -C k8s --strip-components=1
cd k8s
# The vendored reflect2 v1.0.1 crashes binaries built with Go >= 1.18: use Debian's 1.0.2.
V=vendor/github.com/modern-go/reflect2
rm -f $V/*.go $V/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go \
   /usr/share/gocode/src/github.com/modern-go/reflect2/*.s $V/
# 1.20 built with Go >= 1.16 validates "" as null (kubernetes/kubernetes#99804): apply the
# upstream fix (kube-openapi#230) so empty strings are valid string values again.
for f in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go vendor/github.com/go-openapi/validate/type.go; do
  [ -f "$f" ] && sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$f"
done
grep -q "if data == nil {" vendor/github.com/go-openapi/validate/type.go
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
env GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$(mktemp -d)" GOFLAGS=-mod=vendor \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$BIN/"
cd "$CACHE" && rm -rf "$WORK"
echo "$BIN"
