#!/usr/bin/env bash
# Makes what the locked-down bus of docker-compose.yml needs, in
# deploy/nats/generated/ (kept out of git):
#
#   certs/ca.pem, certs/ca-key.pem         a private CA (EC P-256, 10 years)
#   certs/nats-N.pem, certs/nats-N-key.pem one certificate per NATS node
#                                          (SAN nats-N, localhost, 127.0.0.1;
#                                          server and client use: routes are
#                                          mutual TLS), signed by the CA
#   nats.env                               every user's password, for the
#                                          nats-server processes
#   renkei.env                             keys every service shares: audit
#                                          signing key, acknowledgement-link key
#   <service>.env                          RENKEI_NATS__PASSWORD of one service
#                                          and the shared keys
#
# Passwords are random (openssl rand). Nothing is overwritten: run it again
# to fill in what is missing; delete a file to make it anew (delete
# certs/ca*.pem to re-issue every certificate). For production, issue the
# node certificates from your own CA instead and put them at the same paths.
set -euo pipefail
cd "$(dirname "$0")"
out=generated
mkdir -p "$out/certs"
umask 077

users=(registry demarcation contacts emergency observer)

if [ ! -f "$out/certs/ca.pem" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/certs/ca-key.pem"
  openssl req -x509 -new -key "$out/certs/ca-key.pem" -sha256 -days 3650 \
    -subj "/O=Renkei/CN=Renkei NATS CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/certs/ca.pem"
  rm -f "$out"/certs/nats-*.pem
fi

for n in 1 2 3; do
  cert="$out/certs/nats-$n.pem" key="$out/certs/nats-$n-key.pem"
  [ -f "$cert" ] && [ -f "$key" ] && continue
  openssl ecparam -name prime256v1 -genkey -noout -out "$key"
  openssl req -new -key "$key" -subj "/O=Renkei/CN=nats-$n" -out "$out/certs/nats-$n.csr"
  ext="$out/certs/nats-$n.ext"
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:nats-$n,DNS:localhost,IP:127.0.0.1" > "$ext"
  openssl x509 -req -in "$out/certs/nats-$n.csr" -CA "$out/certs/ca.pem" \
    -CAkey "$out/certs/ca-key.pem" -CAcreateserial -days 825 -sha256 \
    -extfile "$ext" -out "$cert" 2>/dev/null
  rm -f "$out/certs/nats-$n.csr" "$ext"
done
rm -f "$out/certs/ca.srl"
# The CA certificate is public: services (uid 10001 in the image) read it.
chmod 644 "$out/certs/ca.pem"

password() { openssl rand -hex 24; }
var() { echo "$(echo "$1" | tr '[:lower:]' '[:upper:]')_NATS_PASSWORD"; }
touch "$out/nats.env"
# Keys every replica of every service shares: the audit chain heads' Ed25519
# seed and the acknowledgement links' key. Made once, never overwritten.
if [ ! -s "$out/renkei.env" ]; then
  {
    echo "RENKEI_AUDIT__SIGNING_KEY=$(openssl rand -hex 32)"
    echo "RENKEI_CONTACTS__LINK_KEY=$(openssl rand -hex 32)"
  } > "$out/renkei.env"
  chmod 600 "$out/renkei.env"
fi
for user in "${users[@]}"; do
  name=$(var "$user")
  if ! grep -q "^$name=" "$out/nats.env"; then
    echo "$name=$(password)" >> "$out/nats.env"
  fi
  if [ "$user" != observer ]; then
    value=$(grep "^$name=" "$out/nats.env" | cut -d= -f2-)
    { echo "RENKEI_NATS__PASSWORD=$value"; cat "$out/renkei.env"; } > "$out/$user.env"
  fi
done

echo "deploy/nats/$out: CA, node certificates and passwords ready"
