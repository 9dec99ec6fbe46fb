#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The NATS export's credentials (user/daemon/natsauth.c, docs/fleet.md),
# against a real nats-server with JetStream that the test starts on
# 127.0.0.1 inside a network namespace of its own. The server only speaks
# TLS, with a CA, server and client certificates made here by openssl, and
# requires a client certificate and a user: a user with a password, or an
# nkey (an Ed25519 key made by openssl, encoded as nkeys are). Each daemon
# run must get its events into the stream (the export cursor reaches the
# log's last event, which only a PubAck moves it to):
#   1. --export-nats-user-file (USER:PASSWORD) with --export-nats-ca,
#      --export-nats-cert and --export-nats-key;
#   2. --export-nats-nkey (the seed file; vigil derives the public key);
#   3. the password in the URL on the command line: warned about, gone from
#      /proc/PID/cmdline, and still working;
#   4. a wrong password, and no CA: the connection is refused, said once;
#   5. --lease-nats (no --export-nats) with the same files: the lease
#      bucket is reached, the lease granted; a wrong password is refused;
#   6. --export-nats-creds against a second server in operator (JWT) mode
#      with a memory resolver: an operator, an account with JetStream and a
#      user made here (tests/e2e/nats_jwt.py: openssl's Ed25519, as nsc
#      would); a user of another operator is refused;
#   7. bad files and combinations are refused at start (exit 2, one line).
# Forged beats while the first daemon runs are one row of rejections in the
# log, exported whole (the cursor reaches its last event_seq), and `vigil
# log gaps` finds nothing missing.
# No password, token or seed ever appears in the daemon's output or logs,
# which show URLs as nats://***@host:port.
#
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools nats-server openssl sqlite3
NATS_JWT=$E2E_ROOT/tests/e2e/nats_jwt.py

setup_lo_test "vg$$u" natsauth
T=$E2E_TMP
PORT=14222
URL=tls://127.0.0.1:$PORT
PW=pw-$RANDOM-$RANDOM-s3cret
make_keys "$KEYS" 1-2 || die "vigil key gen --id 1-2"
printf 'agent 1 name=na-1\nagent 2 name=na-2\n' >"$CONF"

# ------------------------------------------------------- certificates
mkdir -m 700 "$T/pki"
P=$T/pki
ssl() { openssl "$@" >>"$P/openssl.log" 2>&1; }
ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=vigil-test-ca \
	-keyout "$P/ca.key" -out "$P/ca.pem" &&
	ssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$P/server.key" -out "$P/server.csr" &&
	ssl x509 -req -in "$P/server.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
		-extfile <(echo "subjectAltName=IP:127.0.0.1") -out "$P/server.pem" &&
	ssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=vigil-exporter \
		-keyout "$P/client.key" -out "$P/client.csr" &&
	ssl x509 -req -in "$P/client.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
		-extfile <(echo "extendedKeyUsage=clientAuth") -out "$P/client.pem" || {
	show_file "openssl" "$P/openssl.log"
	die "openssl makes a CA, a server and a client certificate"
}
chmod 600 "$P"/*.key

# An nkey: an Ed25519 key, its seed and public key in nkeys' encoding.
ssl genpkey -algorithm ed25519 -out "$P/nkey.pem" &&
	openssl pkey -in "$P/nkey.pem" -outform DER -out "$P/nkey.der" 2>>"$P/openssl.log" &&
	openssl pkey -in "$P/nkey.pem" -pubout -outform DER -out "$P/nkey.pub.der" 2>>"$P/openssl.log" ||
	die "openssl makes an Ed25519 key"
read -r NKEY_SEED NKEY_PUB < <(python3 "$NATS_JWT" nkey "$P/nkey.der" "$P/nkey.pub.der")
case $NKEY_SEED$NKEY_PUB in SU*U*) ;; *) die "an nkey seed and public key (got '$NKEY_SEED' '$NKEY_PUB')" ;; esac
(umask 077 && echo "$NKEY_SEED" >"$T/nkey.seed" && echo "vigil:$PW" >"$T/user" &&
	echo "vigil:wrong-$PW" >"$T/user-wrong")

# ------------------------------------------------------------- server
cat >"$T/nats.conf" <<EOF
listen: 127.0.0.1:$PORT
jetstream { store_dir: "$T/js" }
tls {
  cert_file: "$P/server.pem"
  key_file: "$P/server.key"
  ca_file: "$P/ca.pem"
  verify: true
  timeout: 2
}
authorization {
  users: [
    { user: vigil, password: "$PW" }
    { nkey: $NKEY_PUB }
  ]
}
EOF
start_bg nats "$NS" nats-server -c "$T/nats.conf"
listening() { in_ns "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; }
if ! wait_for 10 listening; then
	show_file "nats-server stderr" "$T/nats.err"
	die "nats-server listens on 127.0.0.1:$PORT in $NS (TLS, users)"
fi
ok "nats-server with JetStream, TLS (client certificates required) and two users listens in $NS"

# ------------------------------------------------------------ helpers
cursor() {
	sqlite3 "$DB" "SELECT printf('%016x-%d', instance_id, event_seq) FROM export_cursor" 2>/dev/null
}
last_key() { # the last event_seq the log covers (a row of rejections covers several)
	sqlite3 "$DB" "SELECT printf('%016x-%d', instance_id, coalesce(event_seq_last, event_seq)) FROM events ORDER BY instance_id DESC, event_seq DESC LIMIT 1"
}
caught_up() { [ -n "$(cursor)" ] && [ "$(cursor)" = "$(last_key)" ]; }
TLS=(--export-nats-ca "$P/ca.pem" --export-nats-cert "$P/client.pem" --export-nats-key "$P/client.key")
run_daemon() { # NAME ARGS...: vigil run exporting to the server
	local name=$1
	shift
	start_daemon_or_die "vigil run ($name) starts" "$name" "$NS" "$PIN" --iface lo --mode skb \
		--keys "$KEYS" --config "$CONF" --db "$DB" --metrics off --export-host auth "$@"
}
# exports NAME WHAT [URL]: the daemon NAME connected (to URL, by default the
# TLS server) and its cursor reached the log's last event.
exports() {
	if check_daemon_says "$2: connected" "$1" 10 "export: connected to NATS at ${3:-tls://\(\*\*\*@\)\?127.0.0.1:$PORT}" &&
		wait_for 15 caught_up; then
		ok "$2: every event reached the stream (cursor $(cursor))"
	else
		show_file "vigil run stderr" "$T/$1.err"
		not_ok "$2: every event reached the stream (cursor $(cursor), last event $(last_key))"
	fi
}

# ------------------------------------------------ 1. user and password
run_daemon d-user --export-nats "$URL" --export-nats-user-file "$T/user" "${TLS[@]}"
for i in 1 2; do start_beater "beat-$i" "$NS" --id "$i" --target 127.0.0.1 --interval-ms 50 --keys "$KEYS"; done
exports d-user "--export-nats-user-file with a CA and a client certificate"
# Forged beats (a wrong key): rejections, recorded as one row of them,
# which the stop closes and the next daemon exports.
VIGIL_KEY=00000000000000000000000000000000 in_ns "$NS" "$VIGIL" beat --id 1 --target 127.0.0.1 \
	--count 5 --interval-ms 20 --incarnation 1
nap 0.5
kill_bg d-user TERM
rej=$(log_json "$DB" | jq -sc '[.[] | select(.kind == "rejected") | [.event_seq, .event_seq_last, .count, .reason]]')
check_sh "5 forged beats are one row of rejections ($rej)" \
	'[ "$(jq "length" <<<"$rej")" -eq 1 ] && [ "$(jq ".[0][2]" <<<"$rej")" -eq 5 ] && [ "$(jq -r ".[0][3]" <<<"$rej")" = bad_tag ]'

# ------------------------------------------------------------ 2. nkey
kill_bg beat-2 KILL # SUSPECT and DEAD, for the next daemon to record and export
nap 1
run_daemon d-nkey --export-nats "$URL" --export-nats-nkey "$T/nkey.seed" "${TLS[@]}"
exports d-nkey "--export-nats-nkey (the public key derived from the seed)"
kill_bg d-nkey TERM
if "$VIGIL" log gaps --db "$DB" >"$T/gaps.out" 2>&1; then
	ok "vigil log gaps: no event_seq missing, the rejections' row counted whole ($(tail -n 1 "$T/gaps.out"))"
else
	show_file "vigil log gaps" "$T/gaps.out"
	not_ok "vigil log gaps: no event_seq missing"
fi

# ---------------------------------------------- 3. password on argv
start_beater beat-2 "$NS" --id 2 --target 127.0.0.1 --interval-ms 50 --keys "$KEYS"
run_daemon d-argv --export-nats "tls://vigil:$PW@127.0.0.1:$PORT" "${TLS[@]}"
cmdline=$(tr '\0' ' ' <"/proc/${PIDS[d-argv]}/cmdline")
check_sh "the password in --export-nats is warned about and gone from /proc/PID/cmdline" \
	'grep -q -- "--export-nats: a secret on the command line is readable by every local user" "$T/d-argv.err" &&
	 [[ $cmdline != *"$PW"* ]] && [[ $cmdline == *"--export-nats xxxx"* ]]'
exports d-argv "a password in the URL"
check "the daemon shows that URL as tls://***@127.0.0.1:$PORT" \
	grep -q "via tls://\*\*\*@127.0.0.1:$PORT" "$T/d-argv.err"
kill_bg d-argv TERM

# -------------------------------------------- 4. refused connections
run_daemon d-wrong --export-nats "$URL" --export-nats-user-file "$T/user-wrong" "${TLS[@]}"
check_daemon_says "a wrong password: the connection is refused, and the daemon says so" d-wrong 10 \
	"export: connecting to NATS (tls://127.0.0.1:$PORT) failed: .*[Aa]uthorization"
kill_bg d-wrong TERM
run_daemon d-noca --export-nats "$URL" --export-nats-user-file "$T/user" \
	--export-nats-cert "$P/client.pem" --export-nats-key "$P/client.key"
check_daemon_says "no --export-nats-ca: the server's certificate is not trusted" d-noca 10 \
	"export: connecting to NATS (tls://127.0.0.1:$PORT) failed: .*\(certificate\|SSL\|handshake\)"
kill_bg d-noca TERM

# ------------------------------------- 5. leases, with the same files
# The lease replication's connection (--lease-nats) authenticates with the
# export's files: the bucket is created, this monitor takes the term and
# grants; with a wrong password it is refused and says so.
cat >"$T/lease.conf" <<EOF
defaults group=cand
agent 1 name=na-1
agent 2 name=na-2
ack cand
lease primary id=1 duration-ms=500 grace-ms=100 candidates=1:20,2:10
EOF
run_lease() { # NAME USER-FILE: a replicating monitor, without --export-nats
	start_daemon_or_die "vigil run ($1) starts" "$1" "$NS" "$PIN" --iface lo --mode skb \
		--keys "$KEYS" --config "$T/lease.conf" --db "$T/$1.db" --metrics off \
		--lease-nats "$URL" --lease-host mon-a --lease-term-ms 300 \
		--export-nats-user-file "$2" "${TLS[@]}"
}
lease_row() { in_ns "$NS" "$VIGIL" lease list --json --pin-root "$PIN" --db "$T/l-user.db" 2>/dev/null | jq -c '.leases[0]'; }
# (The agents beat without naming the lease, so it expires and is granted
# again, each time under a new token.)
granted() { lease_row | jq -e 'select(.token >= 1 and .replicated.granter == "mon-a" and .replicated.token >= .token)' >/dev/null; }
run_lease l-user "$T/user"
check_daemon_says "--lease-nats with --export-nats-user-file and TLS: the bucket is reached" l-user 10 \
	"leases: replicating 1 lease(s) in bucket VIGIL_LEASES at tls://127.0.0.1:$PORT as 'mon-a'"
check_daemon_says "... and this monitor takes the term" l-user 10 "leases: primary: this monitor grants it now"
wait_for 10 granted
check "... and grants the lease under tokens the bucket reserved: $(lease_row | jq -c '[.state, .holder, .token, .replicated.granter, .replicated.token]')" granted
kill_bg l-user TERM
run_lease l-wrong "$T/user-wrong"
check_daemon_says "--lease-nats with a wrong password: refused, and said" l-wrong 10 \
	"leases: connecting to NATS failed: .*[Aa]uthorization"
kill_bg l-wrong TERM

# ------------------------------------------ 6. JWT credentials (.creds)
mkdir -m 700 "$T/jwt" "$T/jwt-other"
CREDS_SEED=$(python3 "$NATS_JWT" operator "$T/jwt") &&
	python3 "$NATS_JWT" operator "$T/jwt-other" >/dev/null ||
	die "nats_jwt.py makes an operator, an account and a user"
JWT_PORT=$((PORT + 1))
JWT_URL=nats://127.0.0.1:$JWT_PORT
cat >"$T/nats-jwt.conf" <<EOF
listen: 127.0.0.1:$JWT_PORT
jetstream { store_dir: "$T/js-jwt" }
operator: "$T/jwt/operator.jwt"
system_account: $(cat "$T/jwt/system.pub")
resolver: MEMORY
resolver_preload: {
  $(cat "$T/jwt/system.pub"): "$(cat "$T/jwt/system.jwt")"
  $(cat "$T/jwt/account.pub"): "$(cat "$T/jwt/account.jwt")"
}
EOF
start_bg nats-jwt "$NS" nats-server -c "$T/nats-jwt.conf"
listening_jwt() { in_ns "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$JWT_PORT" 2>/dev/null; }
if ! wait_for 10 listening_jwt; then
	show_file "nats-server (operator mode) stderr" "$T/nats-jwt.err"
	die "nats-server in operator mode listens on 127.0.0.1:$JWT_PORT in $NS"
fi
ok "a second nats-server with JetStream in operator mode (memory resolver, the account preloaded) listens"
run_daemon d-creds --export-nats "$JWT_URL" --export-nats-creds "$T/jwt/user.creds"
exports d-creds "--export-nats-creds (a user JWT of the account, and its seed)" "$JWT_URL"
kill_bg d-creds TERM
run_daemon d-creds-other --export-nats "$JWT_URL" --export-nats-creds "$T/jwt-other/user.creds"
check_daemon_says "--export-nats-creds of a user the server does not trust: refused, and said" d-creds-other 10 \
	"export: connecting to NATS ($JWT_URL) failed: .*[Aa]uthorization"
kill_bg d-creds-other TERM

# ---------------------------------------------------- 7. refused at start
expect_run_bad() { # DESCRIPTION REGEX ARGS...
	expect_usage_error "$1" "$2" in_ns "$NS" "$VIGIL" run --iface lo --mode skb --config "$CONF" \
		--keys "$KEYS" --db "$DB" --pin-root "$PIN" --metrics off "${@:3}"
}
cp "$T/nkey.seed" "$T/nkey.loose" && chmod 644 "$T/nkey.loose"
expect_run_bad "an nkey seed others can read" \
	"nkey.loose: the file of --export-nats-nkey must be owned by you or root and private" \
	--export-nats "$URL" --export-nats-nkey "$T/nkey.loose"
(umask 077 && echo "UNOTASEED" >"$T/nkey.bad")
expect_run_bad "a file that holds no nkey seed" "does not hold a user nkey seed" \
	--export-nats "$URL" --export-nats-nkey "$T/nkey.bad"
expect_run_bad "two ways to authenticate" "give one of --export-nats-creds, --export-nats-nkey and" \
	--export-nats "$URL" --export-nats-nkey "$T/nkey.seed" --export-nats-user-file "$T/user"
expect_run_bad "a client certificate without its key" "--export-nats-cert and --export-nats-key go together" \
	--export-nats "$URL" --export-nats-cert "$P/client.pem"
expect_run_bad "credentials without --export-nats or --lease-nats" "need --export-nats or --lease-nats" \
	--export-nats-user-file "$T/user"

# -------------------------------------------------- no secret printed
leaks=$(grep -l -e "$PW" -e "$NKEY_SEED" -e "$CREDS_SEED" "$T"/[dl]-*.err "$T"/[dl]-*.out "$T/usage.err" 2>/dev/null | tr '\n' ' ')
check "no password, seed or creds seed in any daemon's output${leaks:+ (found in: $leaks)}" [ -z "$leaks" ]

e2e_finish
