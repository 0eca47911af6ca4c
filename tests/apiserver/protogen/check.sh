#!/usr/bin/env bash
# Regenerates the simulator's protobuf tables (src/sim/proto/json_fields.txt
# and src/sim/proto/testdata/vectors.txt) from this module's k8s.io
# versions, and fails if they differ from the committed ones. With
# --write, writes them instead.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
proto="$here/../../src/sim/proto"
cd "$here"
api=$(go list -m -f '{{.Dir}}' k8s.io/api)
machinery=$(go list -m -f '{{.Dir}}' k8s.io/apimachinery)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./protogen/json_fields.go \
  "$api/core/v1=k8s.io.api.core.v1" \
  "$machinery/pkg/apis/meta/v1=k8s.io.apimachinery.pkg.apis.meta.v1" \
  > "$tmp/json_fields.txt"
go run ./protogen/vectors.go > "$tmp/vectors.txt"
if [ "${1:-}" = "--write" ]; then
  cp "$tmp/json_fields.txt" "$proto/json_fields.txt"
  cp "$tmp/vectors.txt" "$proto/testdata/vectors.txt"
  exit 0
fi
stale=0
for f in json_fields.txt testdata/vectors.txt; do
  if ! diff -q "$tmp/$(basename "$f")" "$proto/$f" >/dev/null; then
    echo "src/sim/proto/$f is stale: run tests/apiserver/protogen/check.sh --write" >&2
    stale=1
  fi
done
[ "$stale" = 0 ] && echo "protogen: src/sim/proto tables match k8s.io/api $(basename "$api" | cut -d@ -f2)"
exit "$stale"
