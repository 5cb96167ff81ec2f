#!/usr/bin/env bash
# Regenerates gen/ from proto/ with pinned versions of buf and its plugins,
# installed into .hookmesh/bin with `go install` (nothing from a remote buf
# registry). With --check it regenerates into a scratch copy and fails when
# the committed gen/ differs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && ! command -v go >/dev/null && export PATH=/usr/local/go/bin:$PATH

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

bin="$PWD/.hookmesh/bin"
mkdir -p "$bin"
install_tool() { # name package version
  local stamp="$bin/.$1-$3"
  if [ ! -x "$bin/$1" ] || [ ! -f "$stamp" ]; then
    GOBIN="$bin" go install "$2@$3"
    rm -f "$bin/.$1-"*
    touch "$stamp"
  fi
}
install_tool buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_tool protoc-gen-connect-go connectrpc.com/connect/cmd/protoc-gen-connect-go "$PROTOC_GEN_CONNECT_GO_VERSION"
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
export PATH="$bin:$PATH"

buf lint
buf format -d --exit-code

if [ "${1:-}" = "--check" ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  cp -r proto buf.yaml buf.gen.yaml "$scratch"/
  (cd "$scratch" && buf generate)
  if ! diff -r "$scratch/gen" gen >/dev/null; then
    diff -r "$scratch/gen" gen | head -20 >&2
    echo "gen/ is stale: run 'make generate' and commit the result" >&2
    exit 1
  fi
  echo "gen/ is up to date"
else
  buf generate
fi
