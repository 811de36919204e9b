#!/usr/bin/env bash
# Render the release manifests from the kustomizations (crds/ and manifests/):
#
#   dist/crds.yaml     the CustomResourceDefinitions; apply them first
#   dist/install.yaml  everything else: namespace, RBAC, Deployment, PDB, metrics Service,
#                      with the image tagged with the package's version
#
#   bash scripts/release.sh [OUTPUT_DIR]     # default: dist/
#   IMAGE=registry.example.com/scene-operator bash scripts/release.sh   # another repository
#
# Install:  kubectl apply --server-side -f dist/crds.yaml
#           kubectl apply -f dist/install.yaml
# Needs kubectl (its built-in kustomize) and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-dist}
DEFAULT_IMAGE=ghcr.io/scene-operator/scene-operator
IMAGE=${IMAGE:-$DEFAULT_IMAGE}

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
[ -n "$VERSION" ] || { echo "release: no version in pyproject.toml" >&2; exit 1; }

mkdir -p "$OUT"
# kustomize loads bases by relative path only: the overlay is a temporary folder here.
overlay=$(mktemp -d "$ROOT/.release.XXXXXX")
trap 'rm -rf "$overlay"' EXIT
# An overlay that only sets the image: the base itself stays as it is.
cat >"$overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../crds        # the CRDs' own kustomization (kept apart from the operator's)
  - ../manifests
images:
  - name: $DEFAULT_IMAGE
    newName: $IMAGE
    newTag: "$VERSION"
EOF
kubectl kustomize "$overlay" >"$overlay/all.yaml"

header() {
  printf '# scene-operator %s: %s\n# Rendered by scripts/release.sh from crds/ and manifests/; do not edit.\n' "$VERSION" "$1"
}
header "the CRDs. Apply first: kubectl apply --server-side -f crds.yaml" >"$overlay/crds.yaml"
header "the operator (needs crds.yaml). kubectl apply -f install.yaml" >"$overlay/install.yaml"
# kubectl kustomize separates documents with a line `---` and writes each document's
# top-level `kind:` at column 0.
awk -v crds="$overlay/crds.yaml" -v rest="$overlay/install.yaml" '
  function flush(   f) {
    if (doc == "") return
    f = (doc ~ /(^|\n)kind: CustomResourceDefinition\n/) ? crds : rest
    printf "%s%s", (count[f]++ ? "---\n" : ""), doc >> f
    doc = ""
  }
  /^---$/ { flush(); next }
  { doc = doc $0 "\n" }
  END { flush() }
' "$overlay/all.yaml"
grep -q '^kind: CustomResourceDefinition$' "$overlay/crds.yaml" \
  || { echo "release: no CRD in the rendered base" >&2; exit 1; }
grep -q "image: $IMAGE:$VERSION\$" "$overlay/install.yaml" \
  || { echo "release: the Deployment's image is not $IMAGE:$VERSION" >&2; exit 1; }
mv "$overlay/crds.yaml" "$OUT/crds.yaml"
mv "$overlay/install.yaml" "$OUT/install.yaml"
echo "release $VERSION: $OUT/crds.yaml $OUT/install.yaml ($IMAGE:$VERSION)" >&2
