#!/usr/bin/env bash
# Prints the hash of the dashboard's sources: what ui/dist is built from
# (ui/src, including the generated clients in ui/src/gen, index.html, the
# npm manifests, the Vite and TypeScript configuration). `make ui` writes it
# into ui/dist/source-hash; `make check-generated` recomputes it (sha256sum
# only, no Node) and fails when the built assets are stale.
set -euo pipefail
cd "$(dirname "$0")/../ui"
{
	find src -type f -print
	printf '%s\n' index.html package.json package-lock.json vite.config.ts tsconfig.json
} | LC_ALL=C sort | while IFS= read -r f; do
	sha256sum -- "$f"
done | sha256sum | cut -d' ' -f1
