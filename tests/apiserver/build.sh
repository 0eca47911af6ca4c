#!/usr/bin/env bash
# Builds the test kube-apiserver (apiserver) and the client-go peer
# (clientgo-informer) into OUT_DIR (default: tests/apiserver/bin/).
#
#   tests/apiserver/build.sh [OUT_DIR]
#
# Idempotent: with Go's module and build caches warm (their default places)
# and nothing changed, it only checks and returns in seconds. A cold build
# compiles kube-apiserver with all of its dependencies: ~17 min on 2 busy
# cores, ~140 MB of module downloads from the Go module proxy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/bin}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

cd "$here"
# /version reports the kube-apiserver release it is built from (a library
# build says v0.0.0-master otherwise, which kubectl cannot parse).
version="$(go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/kubernetes)"
minor="${version#v1.}"
minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"

nice go build -buildvcs=false -ldflags "$ldflags" -o "$out/" . ./cmd/clientgo-informer
echo "built $out/apiserver and $out/clientgo-informer (kube-apiserver $version)"
