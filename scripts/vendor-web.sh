#!/usr/bin/env bash
# Refreshes the web app's vendored JavaScript (tessera/web/static/vendor) from npm, with their
# LICENSE files. Users never run this: the files ship in the package. Needs npm.
#   ./scripts/vendor-web.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=tessera/web/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=(htmx.org@2.0.11 @alpinejs/csp@3.17.4 vega@6.4.0 vega-lite@6.4.3 vega-embed@7.3.0 vega-interpreter@2.3.2)
(cd "$work" && npm pack --silent "${packages[@]}" >/dev/null)
for tgz in "$work"/*.tgz; do
    d="${tgz%.tgz}"; mkdir -p "$d"; tar xzf "$tgz" -C "$d"
done
mkdir -p "$out"
cp "$work"/htmx.org-*/package/dist/htmx.min.js "$out/htmx.min.js"
cp "$work"/htmx.org-*/package/LICENSE "$out/htmx.LICENSE"
cp "$work"/alpinejs-csp-*/package/dist/cdn.min.js "$out/alpine-csp.min.js"
# The Alpine.js package carries no LICENSE file; its package.json says MIT (Caleb Porzio and contributors).
cat > "$out/alpine-csp.LICENSE" <<'LIC'
MIT License

Copyright (c) 2019-2025 Caleb Porzio and contributors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
LIC
cp "$work"/vega-6*/package/build/vega.min.js "$out/vega.min.js"
cp "$work"/vega-6*/package/LICENSE "$out/vega.LICENSE"
cp "$work"/vega-lite-*/package/build/vega-lite.min.js "$out/vega-lite.min.js"
cp "$work"/vega-lite-*/package/LICENSE "$out/vega-lite.LICENSE"
cp "$work"/vega-embed-*/package/build/vega-embed.min.js "$out/vega-embed.min.js"
cp "$work"/vega-embed-*/package/LICENSE "$out/vega-embed.LICENSE"
cp "$work"/vega-interpreter-*/package/LICENSE "$out/vega-interpreter.LICENSE"
# vega-interpreter ships as an ES module importing vega-util; as a classic script it takes those
# from the `vega` global (which re-exports vega-util) and sets `vegaInterpreter`.
{
    echo "/* vega-interpreter 2.3.2 (BSD-3-Clause, see vega-interpreter.LICENSE), as a classic script */"
    echo "(function () {"
    sed -e "s#^import { \(.*\) } from 'vega-util';#const { \1 } = window.vega;#" \
        -e "s#^export { expression as expressionInterpreter };#window.vegaInterpreter = { expressionInterpreter: expression };#" \
        -e '/^\/\/# sourceMappingURL/d' "$work"/vega-interpreter-*/package/build/vega-interpreter.js
    echo "})();"
} > "$out/vega-interpreter.js"
# No source maps are shipped: drop their references.
sed -i -e "/^\/\/# sourceMappingURL=/d" "$out"/*.js
grep -q "^import\|^export" "$out/vega-interpreter.js" && { echo "vega-interpreter: an import/export was left" >&2; exit 1; }
echo "vendored into $out:"; ls -la "$out"
