#!/usr/bin/env bash
# Makes a certificate authority and a broker certificate (PEM) for Kafka's SASL_SSL
# listener: the production profile's TLS, and the local stack's TLS listener.
#
#   deploy/tls.sh <dir> [host ...]     (default host: 127.0.0.1 and localhost)
#
# Writes <dir>/ca.pem (give it to clients: XINYONG_KAFKA_SSL_CAFILE), <dir>/ca.key,
# <dir>/broker.pem (the broker's unencrypted PKCS#8 key followed by its certificate, the
# form Kafka's `ssl.keystore.type=PEM` reads). Idempotent: an existing CA is kept, and the
# broker certificate is made again only when missing or within 30 days of expiry.
set -euo pipefail
dir=${1:?usage: tls.sh <dir> [host ...]}
shift
hosts=("$@")
((${#hosts[@]})) || hosts=(127.0.0.1 localhost)
mkdir -p -- "$dir"
chmod 700 -- "$dir"
umask 077

if [[ ! -f $dir/ca.pem ]] && ! command -v openssl >/dev/null 2>&1; then
    echo "tls.sh: openssl is needed to make the certificates" >&2
    exit 1
fi
if [[ ! -f $dir/ca.pem || ! -f $dir/ca.key ]]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -sha256 \
        -subj "/O=Xinyong/CN=Xinyong Kafka CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi

if [[ -f $dir/broker.pem ]] && ! command -v openssl >/dev/null 2>&1; then
    exit 0  # made elsewhere (a container without openssl gets it from a volume)
fi
if [[ -f $dir/broker.pem ]] && openssl x509 -checkend $((30 * 86400)) -noout \
    -in "$dir/broker.pem" >/dev/null 2>&1; then
    exit 0
fi

san=""
for h in "${hosts[@]}"; do
    if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+="IP:$h,"; else san+="DNS:$h,"; fi
done
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
openssl req -newkey rsa:3072 -nodes -sha256 -subj "/O=Xinyong/CN=${hosts[0]}" \
    -keyout "$work/broker.key" -out "$work/broker.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "${san%,}" >"$work/ext.cnf"
openssl x509 -req -sha256 -days 825 -in "$work/broker.csr" -CA "$dir/ca.pem" \
    -CAkey "$dir/ca.key" -CAcreateserial -CAserial "$work/ca.srl" \
    -extfile "$work/ext.cnf" -out "$work/broker.crt" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/broker.key" -out "$work/broker.pk8"
cat "$work/broker.pk8" "$work/broker.crt" >"$dir/broker.pem.tmp"
mv -f -- "$dir/broker.pem.tmp" "$dir/broker.pem"
