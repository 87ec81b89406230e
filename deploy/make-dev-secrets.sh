#!/bin/sh
# Make the secret files deploy/compose.yaml reads, for a test or demo host:
#   deploy/make-dev-secrets.sh [DIR]        (default: deploy/secrets)
#
#   ca.crt, ca.key            a throw-away CA that signs the proxy's certificate
#   tls.crt, tls.key          the proxy's certificate for localhost / 127.0.0.1
#   partner-ca.crt, .key      the CA whose certificates partners present (mutual TLS)
#   partner-demo.crt, .key    one partner's client certificate, signed by it
#   db_password               a random database password
#
# In production the TLS certificate comes from your CA (or ACME), the partner CA is
# the one your network agreed on, and none of these files is ever committed
# (deploy/secrets/ is in .gitignore and .dockerignore). Files that exist are kept.
set -eu
dir=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
cd "$dir"

days=825
ec() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "$@"; }

if [ ! -f ca.crt ]; then
    ec -x509 -days "$days" -subj "/CN=Ketenhub dev CA" -keyout ca.key -out ca.crt \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
fi
if [ ! -f tls.crt ]; then
    ec -subj "/CN=localhost" -keyout tls.key -out tls.csr
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
        "extendedKeyUsage=serverAuth" "basicConstraints=critical,CA:FALSE" > tls.ext
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
        -extfile tls.ext -out tls.crt
    rm -f tls.csr tls.ext
fi
if [ ! -f partner-ca.crt ]; then
    ec -x509 -days "$days" -subj "/CN=Ketenhub dev partner CA" \
        -keyout partner-ca.key -out partner-ca.crt \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
fi
if [ ! -f partner-demo.crt ]; then
    ec -subj "/O=GTB/CN=gtb" -keyout partner-demo.key -out partner-demo.csr
    printf '%s\n' "extendedKeyUsage=clientAuth" "basicConstraints=critical,CA:FALSE" > client.ext
    openssl x509 -req -in partner-demo.csr -CA partner-ca.crt -CAkey partner-ca.key \
        -CAcreateserial -days "$days" -extfile client.ext -out partner-demo.crt
    rm -f partner-demo.csr client.ext
fi
if [ ! -f db_password ]; then
    openssl rand -hex 24 > db_password
fi
# The containers read these as other users (postgres, the hub's 10001, nginx): the
# directory stays 0700, the files they mount are readable.
chmod 0644 db_password tls.crt tls.key partner-ca.crt ca.crt
echo "secrets in $(pwd)"
