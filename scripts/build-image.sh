#!/usr/bin/env bash
# Build the operator's image from the Dockerfile with podman; print its reference on the
# last line of stdout (everything else goes to stderr).
#
#   bash scripts/build-image.sh               # localhost/scene-operator:<version>-<inputs hash>
#   BASE_IMAGE=REF bash scripts/build-image.sh  # build on that base instead
#
# Base image, in this order: $BASE_IMAGE; the Dockerfile's pinned python:3.11-slim when
# podman already has it; a local Debian bookworm base (debootstrap: python3, python3-venv,
# ca-certificates) when podman already has it; the pinned base pulled from its registry;
# otherwise that local base is built (about 70 s) and kept as a tarball in the cache.
#
# Cached like the control plane (${SCENE_OPERATOR_CACHE:-~/.cache/scene-operator}): the image
# is tagged with a hash of everything that goes into it (the base image's id, the version,
# Dockerfile, .dockerignore, pyproject.toml and controller/), and nothing is
# built when podman already holds that tag. A changed source file rebuilds only the layer
# that installs the package (the dependency layer changes only with pyproject.toml).
#
# Set-up (as root; Debian): podman and runc from Debian (crun, podman's default runtime,
# refuses a cgroup v1/hybrid layout), `default_ulimits = []` in containers.conf (otherwise
# a container cannot start where raising RLIMIT_NOFILE is not permitted), debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${SCENE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scene-operator}"
NAME=localhost/scene-operator
BASE_NAME=localhost/scene-operator-base
DEBIAN_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

log() { echo "build-image: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- set-up --------------------------------------------------------------------------------
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >&2
fi
CONF=/etc/containers/containers.conf
if ! grep -qs '^[[:space:]]*default_ulimits[[:space:]]*=[[:space:]]*\[\]' "$CONF"; then
  log "writing default_ulimits = [] into $CONF"
  as_root mkdir -p "$(dirname "$CONF")"
  if grep -qs '^\[containers\]' "$CONF"; then
    as_root sed -i '/^\[containers\]/a default_ulimits = []' "$CONF"
  else
    printf '[containers]\ndefault_ulimits = []\n' | as_root tee -a "$CONF" >/dev/null
  fi
fi
pm() { podman --runtime runc --cgroup-manager=cgroupfs "$@"; }

mkdir -p "$CACHE"
# One build at a time on this machine (parallel test workers, several checkouts).
exec 9>"$CACHE/image.lock"
flock 9

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
[ -n "$VERSION" ] || { log "no version in pyproject.toml"; exit 1; }

# --- the base ------------------------------------------------------------------------------
PINNED=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile | head -1)
[ -n "$PINNED" ] || { log "no ARG BASE_IMAGE=... default in the Dockerfile"; exit 1; }
# The local base's tag changes with its recipe.
RECIPE="debootstrap --variant=minbase --include=$BASE_PACKAGES $DEBIAN_SUITE; cleanup v1"
LOCAL_BASE="$BASE_NAME:$DEBIAN_SUITE-$(printf %s "$RECIPE" | sha256sum | cut -c1-12)"
BASE_TAR="$CACHE/image-base/${LOCAL_BASE##*:}.tar.gz"

build_local_base() {
  if [ ! -f "$BASE_TAR" ]; then
    command -v debootstrap >/dev/null || {
      as_root apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >&2
    }
    log "building a Debian $DEBIAN_SUITE base with debootstrap (about a minute, once)"
    local root
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    as_root debootstrap --variant=minbase --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$root" \
      >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    # What an image does not need: package caches and lists, documentation, locales.
    as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
      "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
      "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
    mkdir -p "$(dirname "$BASE_TAR")"
    as_root tar -C "$root" --numeric-owner -czf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    as_root rm -rf "$root"
  fi
  log "importing $BASE_TAR as $LOCAL_BASE"
  pm import --quiet "$BASE_TAR" "$LOCAL_BASE" >&2
}

if [ -n "${BASE_IMAGE:-}" ]; then
  BASE=$BASE_IMAGE
  pm image exists "$BASE" || pm pull "$BASE" >&2
elif pm image exists "$PINNED"; then
  BASE=$PINNED
elif pm image exists "$LOCAL_BASE"; then
  BASE=$LOCAL_BASE
elif timeout 60 podman pull --quiet "$PINNED" >/dev/null 2>&1; then
  BASE=$PINNED
else
  log "no registry answered for $PINNED: using a local Debian $DEBIAN_SUITE base"
  build_local_base
  BASE=$LOCAL_BASE
fi
BASE_ID=$(pm image inspect --format '{{.Id}}' "$BASE")

# --- the image -----------------------------------------------------------------------------
inputs_hash() {
  {
    printf 'base %s\nversion %s\n' "$BASE_ID" "$VERSION"
    find Dockerfile .dockerignore pyproject.toml controller -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.pyo' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}
IMAGE="$NAME:$VERSION-$(inputs_hash)"

if pm image exists "$IMAGE"; then
  log "$IMAGE is up to date"
else
  log "building $IMAGE on $BASE"
  began=$(date +%s)
  # pip inside the build reaches the package index like the host does: host network and
  # the host's CA bundle.
  # --format docker: the OCI format has no HEALTHCHECK.
  pm build --quiet --layers --format docker \
    --network host \
    --volume "$CA_BUNDLE:$CA_BUNDLE:ro" \
    --build-arg "BASE_IMAGE=$BASE" \
    --build-arg "VERSION=$VERSION" \
    --build-arg "COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
    --tag "$IMAGE" --tag "$NAME:$VERSION" \
    --file Dockerfile . >&2
  log "built $IMAGE in $(($(date +%s) - began)) s"
  # Older builds: the three newest are kept (a few checkouts may alternate), not more.
  pm images --sort created --format '{{.Repository}}:{{.Tag}}' \
    | grep -E "^$NAME:[^ ]+-[0-9a-f]{16}\$" | tail -n +4 \
    | while read -r old; do pm rmi "$old" >/dev/null 2>&1 || true; done
fi
echo "$IMAGE"
