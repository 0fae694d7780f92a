#!/usr/bin/env bash
# The five-minute demo (README, "Try it"): a platform of three organisations,
# its common rules brought into force by full consensus, and a spread alert
# end to end — declared on Agency A's Records, delivered to Agency B, whose
# system it may reach, and acknowledged there.
#
# First, in one terminal: `renkei up`; in another: `renkei listen` (prints
# the alerts Agency B receives). Then: `bash docs/demo/demo.sh`.
#
# RENKEI: the renkei binary (default: `renkei` on PATH, else the one cargo
# built in target/). RENKEI_URL: the deployment (default
# http://127.0.0.1:8080). DEMO_DATA_DIR: renkei up's data directory, whose
# development key signs the tokens (default .renkei). DEMO_WEBHOOK: where
# Agency B's alerts go (default `renkei listen`'s http://127.0.0.1:9000).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${RENKEI:-}" ]; then
  RENKEI=$(command -v renkei || ls -t "$root"/target/{release,debug}/renkei 2>/dev/null | head -1 || true)
fi
[ -x "${RENKEI:-}" ] || { echo "demo: no renkei binary; build it: cargo build --release -p renkei" >&2; exit 1; }
data=${DEMO_DATA_DIR:-.renkei}
hook=${DEMO_WEBHOOK:-http://127.0.0.1:9000}

renkei() { "$RENKEI" "$@"; }
token() { renkei token --data-dir "$data" --role "$1" ${2:+--org "$2"}; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export RENKEI_TOKEN
RENKEI_TOKEN=$(token admin)

step "1. The platform: three organisations, their systems and links"
renkei import "$here/platform.yaml"
op=$(renkei id org "Digital Agency")
a=$(renkei id org "Agency A")
b=$(renkei id org "Agency B")
platform=$(renkei id system "Gov Cloud")
records=$(renkei id system "Records")
renkei link list

step "2. Common rules: proposed by the operator, in force once every manager accepts"
as_operator=$(token operator "$op")
version=$(renkei rules draft --platform "$platform" --file "$here/rules.yaml" --quiet --token "$as_operator")
renkei rules propose "$version" --token "$as_operator"
renkei rules accept "$version" --token "$(token manager "$a")"
renkei rules accept "$version" --token "$(token manager "$b")"
renkei rules status "$version"

step "3. Agency B's CSIRT: alerts go to $hook/agency-b"
renkei contact add --org "$b" --name "Agency B CSIRT" --role csirt --availability both \
  --webhook "$hook/agency-b" --secret demo-webhook-secret --token "$(token manager "$b")"

step "4. Ransomware on Agency A's Records: who may it reach?"
incident=$(renkei incident declare --system "$records" --category malware --severity 2 --tlp amber \
  --summary "Ransomware on the records server" --quiet --token "$(token csirt "$a")")
renkei incident status "$incident"

step "5. Agency B acknowledges its alert"
for _ in $(seq 1 50); do
  if renkei incident acknowledge "$incident" --token "$(token manager "$b")" 2>/dev/null; then break; fi
  sleep 0.2
done
sleep 1
renkei incident status "$incident"
renkei incident timeline "$incident"
