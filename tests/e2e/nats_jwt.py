#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""NATS identities for tests/e2e/91-nats-auth.sh, made with openssl's Ed25519
and the standard library only (nsc is not packaged in Debian 12):

  nats_jwt.py nkey PRIV.der PUB.der
      a user nkey: prints its seed (SU...) and public key (U...), from an
      Ed25519 key openssl wrote as DER;
  nats_jwt.py operator DIR
      an operator, its system account, an account with JetStream and a user
      of it, as nsc would make them: DIR/operator.jwt, DIR/system.pub,
      DIR/system.jwt, DIR/account.pub, DIR/account.jwt and DIR/user.creds
      (user JWT and seed, mode 0600) for nats-server in operator mode with a
      memory resolver (JetStream needs the system account). Prints the
      user's seed.

An nkey is base32 (no padding) of a prefix byte naming its kind, the 32-byte
key and a CRC-16/XMODEM of both, little-endian; a seed's first two bytes
are 'S' (18 << 3) and the kind. A JWT is base64url(header).base64url(claims)
signed with the issuer's key (alg "ed25519-nkey").
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

KINDS = {"operator": 14 << 3, "account": 0, "user": 20 << 3}
SEED = 18 << 3


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def encode(raw):
    c = crc16(raw)
    return base64.b32encode(raw + bytes([c & 0xFF, c >> 8])).decode().rstrip("=")


def nkey(kind, seed, pub):
    k = KINDS[kind]
    return (encode(bytes([SEED | k >> 5, (k & 31) << 3]) + seed), encode(bytes([k]) + pub))


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, check=True, capture_output=True).stdout


class Key:
    """An Ed25519 key made by openssl, kept as a PEM file for signing."""

    def __init__(self, kind, tmp):
        self.pem = os.path.join(tmp, "%s-%d.pem" % (kind, len(os.listdir(tmp))))
        openssl("genpkey", "-algorithm", "ed25519", "-out", self.pem)
        priv = openssl("pkey", "-in", self.pem, "-outform", "DER")[-32:]
        pub = openssl("pkey", "-in", self.pem, "-pubout", "-outform", "DER")[-32:]
        self.seed, self.public = nkey(kind, priv, pub)

    def sign(self, data):
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            return openssl("pkeyutl", "-sign", "-inkey", self.pem, "-rawin", "-in", f.name)


def b64(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(issuer, subject, name, nats):
    claims = {"jti": b64(os.urandom(24)), "iat": int(time.time()), "iss": issuer.public,
              "name": name, "sub": subject.public, "nats": {**nats, "version": 2}}
    head = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64(json.dumps(claims).encode())
    return head + "." + body + "." + b64(issuer.sign((head + "." + body).encode()))


def operator(out):
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                 "wildcards": True, "conn": -1, "leaf": -1,
                 "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
    with tempfile.TemporaryDirectory() as tmp:
        op, acc, user = Key("operator", tmp), Key("account", tmp), Key("user", tmp)
        system = Key("account", tmp)
        files = {
            "operator.jwt": jwt(op, op, "vigil-test", {"type": "operator",
                                                       "system_account": system.public}),
            "system.pub": system.public,
            "system.jwt": jwt(op, system, "SYS", {"type": "account"}),
            "account.pub": acc.public,
            "account.jwt": jwt(op, acc, "vigil", {"type": "account", "limits": unlimited}),
            "user.creds": "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"
                          "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n"
                          % (jwt(acc, user, "exporter", {"type": "user", "pub": {}, "sub": {},
                                                         "subs": -1, "data": -1, "payload": -1}),
                             user.seed),
        }
    for name, text in files.items():
        fd = os.open(os.path.join(out, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    print(user.seed)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "nkey":
        priv = open(sys.argv[2], "rb").read()[-32:]
        pub = open(sys.argv[3], "rb").read()[-32:]
        print(*nkey("user", priv, pub))
    elif len(sys.argv) == 3 and sys.argv[1] == "operator":
        operator(sys.argv[2])
    else:
        sys.exit("usage: nats_jwt.py nkey PRIV.der PUB.der | operator DIR")


if __name__ == "__main__":
    main()
