#!/usr/bin/env bash
# Regenerates gen/ from proto/ with pinned versions of buf and its plugins,
# installed into .hookmesh/bin with `go install` (nothing from a remote buf
# registry). With --check it regenerates into a scratch copy and fails when
# the committed gen/ differs, or when the dashboard's built assets (ui/dist)
# are not built from its current sources (see scripts/ui-source-hash.sh).
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
  # The dashboard's clients, when its npm packages are installed (make ui).
  if [ -x ui/node_modules/.bin/protoc-gen-es ]; then
    mkdir -p "$scratch/ui"
    cp -r ui/buf.gen.yaml "$scratch/ui/"
    ln -s "$PWD/ui/node_modules" "$scratch/ui/node_modules"
    (cd "$scratch" && buf generate --template ui/buf.gen.yaml)
    if ! diff -r "$scratch/ui/src/gen" ui/src/gen >/dev/null; then
      diff -r "$scratch/ui/src/gen" ui/src/gen | head -20 >&2
      echo "ui/src/gen is stale: run make ui" >&2
      exit 1
    fi
    echo "ui/src/gen is up to date"
  fi
  want="$(bash scripts/ui-source-hash.sh)"
  have="$(cat ui/dist/source-hash 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    echo "ui/dist is stale: run make ui" >&2
    exit 1
  fi
  echo "ui/dist is up to date"
else
  buf generate
  if [ -x ui/node_modules/.bin/protoc-gen-es ]; then
    buf generate --template ui/buf.gen.yaml
  fi
fi
