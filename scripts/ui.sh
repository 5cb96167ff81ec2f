#!/usr/bin/env bash
# What `make ui` runs: installs the dashboard's npm packages (npm ci),
# regenerates its TypeScript clients (ui/src/gen) from proto/ with buf and
# protoc-gen-es, type-checks and builds it with Vite into ui/dist, and
# records the sources' hash in ui/dist/source-hash. Needs Node 20.19+ and
# npm; `go build` and `make run` need neither (ui/dist is committed).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && ! command -v go >/dev/null && export PATH=/usr/local/go/bin:$PATH

command -v node >/dev/null || { echo "error: make ui needs Node.js 20.19+ and npm" >&2; exit 1; }
command -v npm >/dev/null || { echo "error: make ui needs npm" >&2; exit 1; }

(cd ui && npm ci --no-audit --no-fund)
# buf, installed into .hookmesh/bin by scripts/generate.sh.
if [ ! -x .hookmesh/bin/buf ]; then
	bash scripts/generate.sh
fi
.hookmesh/bin/buf generate --template ui/buf.gen.yaml
(cd ui && npm run build)
bash scripts/ui-source-hash.sh >ui/dist/source-hash
echo "ui/dist built ($(cat ui/dist/source-hash))"
