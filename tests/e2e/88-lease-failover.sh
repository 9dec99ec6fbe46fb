#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Leases that outlive their monitor (docs/leases.md#leases-that-outlive-their-monitor).
# Three monitor namespaces with native XDP on a bridge, a real 3-node
# nats-server JetStream cluster (the lease bucket, 3 replicas), three lease
# candidates built on the agent library, each beating to every monitor, and
# the fenced resource of 85-leases.sh. The daemons run with --lease-nats and
# watch each other (--peer). Then, LEASE_KILLS times (default 50), at a
# random moment, one of:
#   kill   the granting monitor's host dies (daemon SIGKILL, XDP and pins
#          removed, link down): the standby takes the term over and grants
#          the lease with a higher token, within the documented bound;
#   stall  the same, with the holder frozen between its lease check and its
#          write: its late write reaches the resource after the new holder's,
#          and must be refused;
#   standby a standby's host dies: the granter keeps granting.
# The dead monitor comes back as a new instance (same database) and stands
# by; it loads in the background (a fresh load takes seconds here), so each
# kill waits only until some other monitor stands by, ready to take over.
# Checked throughout: every takeover gives a token above every token granted
# before, no token is granted twice (across the monitors' logs), the resource
# accepts no stale write and sees no two holders at once, every write came
# from the agent its token was granted to before the next grant, and each
# dead monitor is a DEAD event on its peer.
#
# LEASE_SEED=N reproduces a run; LEASE_STATS=FILE writes the takeover times
# (bench/lease-takeover.sh runs 100 kills that way).
# check_sh evaluates its single-quoted condition later (SC2016, SC2034).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools nats-server sqlite3 python3
# shellcheck source=tests/e2e/lib_monitors.sh
. "$E2E_ROOT/tests/e2e/lib_monitors.sh"
for f in lease_candidate fence_resource; do
	[ -x "$B/$f" ] || die "$B/$f is not built (run make)"
done

D=200     # lease duration, ms
GRACE=50      # grace, ms
IV=50     # candidates' beat interval, ms
TERM_MS=300  # --lease-term-ms
POLL=50   # the standby's read interval (user/daemon/lease_repl.c)
# A standby takes over term x (1 + 3 x 1000 ppm) + grace after the last
# renewal it saw, i.e. at most that + one poll after the granter died; then
# the bucket write that takes the term and reserves a token, and the grant.
# The allowance covers that write and a busy machine (NATS is not at
# real-time priority: under a load of 15 a write took over a second here);
# bench/lease-takeover.sh reports the figures.
W=$((TERM_MS + TERM_MS * 3 / 1000 + GRACE))
ALLOW=${LEASE_ALLOW_MS:-1500}
BOUND=$((W + POLL + ALLOW))
KILLS=${LEASE_KILLS:-50}
SEED=${LEASE_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
note "seed $SEED (LEASE_SEED=$SEED reproduces the kills)"

M=3
MONS="1 2 3"
TARGETS=198.18.0.1,198.18.0.2,198.18.0.3
monitors_net $M c1 c2 c3 || die "three monitor namespaces and three candidate namespaces on one bridge"
nats_cluster || die "a 3-node nats-server cluster listens on 198.18.0.254:14222-14224"
ok "three monitor namespaces (native XDP), three candidates and a 3-node JetStream cluster on one bridge"

KEYS=$E2E_TMP/keys
make_keys "$KEYS" 1-200 || die "vigil key gen"
conf_for() { # conf_for I: monitor I's agents file
	local m
	cat <<EOC
defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3 group=cand
agent 1 name=cand-1
agent 2 name=cand-2
agent 3 name=cand-3
agent 99 name=canary
ack cand
lease primary id=1 duration-ms=$D grace-ms=$GRACE candidates=1:30,2:20,3:10
EOC
	for m in $MONS; do
		[ "$m" = "$1" ] || echo "agent 10$m name=monitor-$m group=peers"
	done
}
peers_of() { local m l=; for m in $MONS; do [ "$m" = "$1" ] || l+="${l:+,}198.18.0.$m"; done; echo "$l"; }
declare -A GEN=() # daemon generation per monitor: its output is mon-I-GEN.{out,err}
dname() { echo "mon-$1-${GEN[$1]}"; }
# up I: monitor I's daemon, started in the background at the candidates'
# real-time priority (chrt: the takeover times measure vigil, not how long a
# busy machine keeps the daemon from running); `ready I` says when it serves.
up() {
	GEN[$1]=$((${GEN[$1]:-0} + 1))
	conf_for "$1" >"$E2E_TMP/agents-$1.conf"
	start_bg "$(dname "$1")" "${MON_NS[$1]}" "${BEAT_PRIO[@]}" "$VIGIL" run \
		--pin-root "${MON_PIN[$1]}" --iface "${MON_IF[$1]}" --db "$E2E_TMP/mon-$1.db" \
		--metrics off --config "$E2E_TMP/agents-$1.conf" --keys "$KEYS" \
		--lease-nats "$NATS_URLS" --lease-host "mon-$1" --lease-term-ms "$TERM_MS" \
		--lease-replicas 3 --peer "$(peers_of "$1")" --peer-id "10$1" --peer-interval-ms "$IV"
}
# ready I: monitor I serves, sees the candidates, and has read the lease's
# record (it grants, or stands by ready to take over).
ready() {
	alive "$(dname "$1")" && [ -e "${MON_PIN[$1]}/link" ] && cand_alive_on "$1" &&
		grep -qE 'leases: primary: (standing by|this monitor grants)' "$E2E_TMP/$(dname "$1").err"
}
cand_alive_on() { # cand_alive_on I: monitor I sees the three candidates alive
	local s a
	s=$(status_json "${MON_PIN[$1]}" 2>/dev/null) || return 1
	for a in 1 2 3; do [ "$(agent_field "$s" "$a" state)" = alive ] || return 1; done
}
for i in $MONS; do up "$i"; done

SOCK=$E2E_TMP/fence.sock
SUMMARY=$E2E_TMP/fence-summary.json
WLOG=$E2E_TMP/fence-writes.jsonl
start_bg resource "$NS_BR" "$B/fence_resource" --socket "$SOCK" --summary "$SUMMARY" --log "$WLOG"
wait_for 5 test -S "$SOCK" || die "the protected resource listens on $SOCK"
for i in 1 2 3; do
	start_bg "cand-$i" "vg$$c$i" "${BEAT_PRIO[@]}" "$B/lease_candidate" --id "$i" \
		--target "$TARGETS" --key "$(key_of "$KEYS" "$i")" --lease 1 --socket "$SOCK" \
		--interval-ms "$IV" --write-ms 5
done
start_beater canary "vg$$c1" --id 99 --target "$TARGETS" --interval-ms 5 --keys "$KEYS"
all_ready() { local i; for i in $MONS; do ready "$i" || return 1; done; }
if wait_for 30 all_ready; then
	ok "three daemons serve with --lease-nats (3 URLs, term $TERM_MS ms) and --peer, and have read the lease's record"
else
	for i in $MONS; do show_file "monitor $i stderr" "$E2E_TMP/$(dname "$i").err" 10; done
	die "three daemons serve with --lease-nats and read the lease's record"
fi

# lease_on I: L_STATE L_HOLDER L_TOKEN as monitor I's kernel has the lease.
lease_on() {
	local j
	j=$("$VIGIL" lease show 1 --json --history 0 --pin-root "${MON_PIN[$1]}" \
		--db "$E2E_TMP/mon-$1.db" 2>/dev/null) || return 1
	read -r L_STATE L_HOLDER L_TOKEN < <(jq -r '"\(.state) \(.holder) \(.token)"' <<<"$j")
	[ -n "$L_TOKEN" ]
}
# held_above T: some monitor holds the lease under a token above T; sets
# G (that monitor), H and T_NOW.
held_above() {
	local i
	for i in $MONS; do
		if lease_on "$i" && [ "$L_STATE" = held ] && [ "$L_TOKEN" -gt "$1" ]; then
			G=$i H=$L_HOLDER T_NOW=$L_TOKEN
			return 0
		fi
	done
	return 1
}
if wait_for 10 held_above 0; then
	ok "the lease is granted by one monitor (monitor $G, holder $H, token $T_NOW)"
else
	for i in $MONS; do show_file "monitor $i" "$E2E_TMP/$(dname "$i").err"; done
	die "the lease is granted by one of the monitors"
fi
holding() { # holding: how many monitors hold the lease in their kernel
	local i n=0
	for i in $MONS; do lease_on "$i" && [ "$L_STATE" = held ] && n=$((n + 1)); done
	echo "$n"
}
# standby_ready G: a monitor other than G is ready; sets S to one of them.
standby_ready() {
	local i
	for i in $MONS; do
		[ "$i" != "$1" ] && ready "$i" && S=$i && return 0
	done
	return 1
}

# vigil lease list on a standby shows the bucket's record: who grants, the
# holder and the token; on the granter, that it grants.
list_json() { "$VIGIL" lease list --json --pin-root "${MON_PIN[$1]}" --db "$E2E_TMP/mon-$1.db" 2>/dev/null | jq -c '.leases[0]'; }
list_text() { "$VIGIL" lease list --pin-root "${MON_PIN[$1]}" --db "$E2E_TMP/mon-$1.db" 2>/dev/null; }
shows_standby() { # shows_standby S G: monitor S's list names G as the granter of H's grant, T_NOW
	list_json "$1" | jq -e --arg g "mon-$2" --argjson h "$H" --argjson t "$T_NOW" \
		'.state == "standby" and .holder == $h and .token == $t and .replicated.granter == $g and .replicated.standby' >/dev/null &&
		list_text "$1" | grep -q "replicated: monitor 'mon-$2' grants it; this one ('mon-$1') stands by"
}
wait_for 15 standby_ready "$G"
if wait_for 15 shows_standby "$S" "$G"; then
	ok "vigil lease list on standby monitor $S: $(list_text "$S" | sed -n 2p | tr -s ' '); $(list_text "$S" | sed -n 3p | sed 's/^ *//')"
else
	list_text "$S" | sed 's/^/# /'
	not_ok "vigil lease list on standby monitor $S shows the bucket's holder $H, token $T_NOW and granter mon-$G ($(list_json "$S"))"
fi
check "vigil lease list on monitor $G says it grants" \
	sh -c "\"$VIGIL\" lease list --pin-root '${MON_PIN[$G]}' --db '$E2E_TMP/mon-$G.db' | grep -q \"replicated: this monitor ('mon-$G') grants it\""

read -r OFF_MONO OFF_BOOT < <(python3 -c 'import time
w = time.time_ns(); m = time.monotonic_ns(); b = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
print(w - m, w - b)')
mono() { local us=${EPOCHREALTIME/./}; echo $((us * 1000 - OFF_MONO)); }
grant_wall() { sqlite3 "$E2E_TMP/mon-$1.db" "SELECT wall_ns FROM lease_log WHERE lease_id = 1 AND event = 'granted' AND token = $2"; }
nap_ms() { nap "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
stopped() { [ "$(ps -o state= -p "$1" 2>/dev/null)" = T ]; }
resource_saw() { [ -s "$WLOG" ] && [ "$(tail -n 1 "$WLOG" | jq .token)" -gt "$1" ]; }
learned() { # learned I TOKEN: candidate I printed that it holds TOKEN (its mono_ns)
	jq -r "select(.event == \"gained\" or .event == \"token\") | select(.token == $2) | .mono_ns" \
		"$E2E_TMP/cand-$1.out" 2>/dev/null | head -n 1
}

t_grant=() t_learn=() bad=() both=0
declare -A ACTS=()
STALLS=0 t0=$(now)
for ((n = 1; n <= KILLS; n++)); do
	# A freeze asked for and not taken (a stall that became a plain kill
	# below) happens at that candidate's next write as the holder, which
	# may come after the last look for frozen candidates: left frozen, it
	# goes DEAD and no monitor is ready for any later kill.
	for i in 1 2 3; do
		stopped "${PIDS[cand-$i]}" && kill -CONT "${PIDS[cand-$i]}"
	done
	if ! wait_for 5 held_above 0; then
		bad+=("kill $n: the lease is not held before it")
		continue
	fi
	g=$G h=$H t=$T_NOW
	if ! wait_for 15 standby_ready "$g"; then
		bad+=("kill $n: no monitor stands by ready to take over from monitor $g")
		continue
	fi
	s=$S
	r=$((RANDOM % 100))
	if [ "$n" -eq 1 ]; then
		act=stall # at least one late write, whatever the seed
	elif [ $r -lt 15 ]; then
		act=standby
	elif [ $r -lt 30 ]; then
		act=stall
	else
		act=kill
	fi
	ACTS[$act]=$((${ACTS[$act]:-0} + 1))
	nap_ms $((RANDOM % 200)) # anywhere between two renewals of the term
	if [ $act = standby ]; then
		monitor_host_dies "$s" "$(dname "$s")"
		nap_ms $((W + POLL))
		# The granter keeps the term. (It may grant again itself: a term
		# renewal slower than a third of the term, on a busy machine, lets
		# the term lapse and the lease expire, safely.)
		lease_on "$g" && [ "$L_STATE" = held ] && [ "$L_TOKEN" -ge "$t" ] ||
			bad+=("kill $n: a standby died and monitor $g no longer holds the lease ($L_STATE, token $L_TOKEN, was $t)")
		dead=$s
	else
		if [ $act = stall ]; then
			# It freezes at its next write as the holder; a holder whose
			# own deadline ran out meanwhile (a busy machine) writes
			# nothing: then this is a plain kill.
			kill -USR2 "${PIDS[cand-$h]}"
			if ! wait_for 2 stopped "${PIDS[cand-$h]}"; then
				note "kill $n: holder $h did not write in 2 s; a plain kill"
				act=kill
			fi
		fi
		t_kill=$(mono)
		monitor_host_dies "$g" "$(dname "$g")"
		if wait_for 5 held_above "$t"; then
			[ "$G" != "$g" ] || bad+=("kill $n: token $T_NOW granted by monitor $G, which was dead")
			gw=$(grant_wall "$G" "$T_NOW")
			if [ -n "$gw" ]; then
				t_grant+=($(((gw - OFF_MONO - t_kill) / 1000)))
			else
				bad+=("kill $n: no grant of token $T_NOW in monitor $G's lease log")
			fi
			if wait_for 2 test -n "$(learned "$H" "$T_NOW")"; then
				t_learn+=($((($(learned "$H" "$T_NOW") - t_kill) / 1000)))
			fi
		else
			bad+=("kill $n: monitor $g died holding token $t; no grant above it")
		fi
		if [ $act = stall ]; then
			# The new holder writes; then the frozen one's late write lands.
			wait_for 3 resource_saw "$t" && STALLS=$((STALLS + 1))
			kill -CONT "${PIDS[cand-$h]}"
		fi
		# A freeze asked for and not taken happens at a later write.
		for i in 1 2 3; do
			stopped "${PIDS[cand-$i]}" && kill -CONT "${PIDS[cand-$i]}"
		done
		dead=$g
	fi
	# The dead host comes back as a new instance, in the background.
	monitor_host_back "$dead" || bad+=("kill $n: monitor $dead's link does not come back")
	up "$dead"
	[ "$(holding)" -le 1 ] || both=$((both + 1))
done
wait_for 30 all_ready || bad+=("the monitors restarted last do not serve")
secs=$(awk -v t="$t0" -v now="$(now)" 'BEGIN { printf "%.0f", now - t }')
acts=""
for a in "${!ACTS[@]}"; do acts+="${acts:+, }$a ${ACTS[$a]}"; done
note "$KILLS monitor deaths in ${secs}s ($acts)"
for m in "${bad[@]}"; do note "$m"; done
ms() { awk -v u="$1" 'BEGIN { printf "%.0f", u / 1000 }'; }
pct() { # pct P VALUES...: the P-th percentile (nearest rank), in ms
	local p=$1
	shift
	printf '%s\n' "$@" | sort -n | awk -v p="$p" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.0f", v[i] / 1000 }'
}
stats() { echo "median $(pct 50 "$@") / p99 $(pct 99 "$@") / max $(pct 100 "$@") ms over $# takeovers"; }
if [ ${#t_grant[@]} -gt 0 ]; then
	note "takeover, granter's death -> the standby's grant: $(stats "${t_grant[@]}") (bound $W + $POLL + $ALLOW = $BOUND ms)"
	[ ${#t_learn[@]} -gt 0 ] && note "takeover, granter's death -> the holder knows its new token: $(stats "${t_learn[@]}")"
	if [ -n "${LEASE_STATS:-}" ]; then
		printf '{"kills":%d,"grant_ms":[%s],"learn_ms":[%s],"term_ms":%d,"grace_ms":%d,"duration_ms":%d}\n' \
			"$KILLS" "$(printf '%s\n' "${t_grant[@]}" | awk '{ printf "%s%.1f", (NR > 1 ? "," : ""), $1 / 1000 }')" \
			"$(printf '%s\n' "${t_learn[@]:-}" | awk 'NF { printf "%s%.1f", (NR > 1 ? "," : ""), $1 / 1000 }')" \
			"$TERM_MS" "$GRACE" "$D" >"$LEASE_STATS"
	fi
fi
worst=$(pct 100 "${t_grant[@]:-999999999}")
check_sh "$KILLS randomized monitor deaths ($acts): each granter's death handed the lease to the standby with a higher token within $BOUND ms (worst $worst ms)" \
	'[ ${#bad[@]} -eq 0 ] && [ ${#t_grant[@]} -ge $((ACTS[kill] + ACTS[stall])) ] && [ "$worst" -le "$BOUND" ]'
check_sh "never two monitors holding the lease at once ($both of $KILLS looks)" '[ "$both" -eq 0 ]'

# Each monitor death is an event on its peer: agent 101 or 102 DEAD.
# Each monitor death is an event on its peers that run: agent 10I DEAD.
deaths=$(cat "$E2E_TMP"/mon-*.out | jq -s '[.[] | select(.kind == "dead" and .agent_id > 100 and .agent_id < 104)] | length')
check_sh "each dead monitor is a DEAD event on its peers ($deaths for $KILLS deaths)" '[ "$deaths" -ge "$KILLS" ]'

# ------------------------------------------------------- partition, daemon
# The granter cut off from NATS (a blackhole route to the cluster in its
# namespace) while it still sees the candidates, then a granter whose daemon
# dies with its XDP program left running: either way its kernel stops
# renewing the lease at the end of its term, so a standby takes over.
wait_for 30 all_ready
# cut_off HOW: HOW is 'nats' or 'daemon'; one result line.
cut_off() {
	local how=$1 g t ok=1
	wait_for 5 held_above 0 || { not_ok "$how: the lease is held before"; return; }
	g=$G t=$T_NOW
	if [ "$how" = nats ]; then
		ip -n "${MON_NS[$g]}" route add blackhole 198.18.0.254/32
	else
		kill_bg "$(dname "$g")" KILL
	fi
	wait_for 5 held_above "$t" && [ "$G" != "$g" ] || ok=0
	local g2=$G t2=$T_NOW
	lease_on "$g"
	local st=$L_STATE
	if [ "$how" = nats ]; then
		ip -n "${MON_NS[$g]}" route del blackhole 198.18.0.254/32
		check_daemon_says "$how: monitor $g, back in touch with NATS, stands by" "$(dname "$g")" 10 \
			"standing by; monitor 'mon-$g2' grants it"
	else
		up "$g" # adopts its running instance
	fi
	check_sh "$how: monitor $g $([ "$how" = nats ] && echo "cut off from NATS" || echo "whose daemon died (XDP left running)") stopped renewing at its term's end ($st in its kernel); monitor $g2 took over with token $t2 > $t" \
		'[ "$ok" = 1 ] && [ "$st" != held ]'
}
cut_off nats
wait_for 30 all_ready
cut_off daemon
wait_for 30 all_ready || not_ok "the monitors serve again"

# ------------------------------------------------------------------ audit
for i in 1 2 3; do kill_bg "cand-$i" TERM; done
kill_bg resource TERM
tokens=$(for i in $MONS; do sqlite3 "$E2E_TMP/mon-$i.db" "SELECT wall_ns, token FROM lease_log WHERE lease_id = 1 AND event = 'granted'"; done | sort -n | cut -d'|' -f2)
ngr=$(grep -c . <<<"$tokens")
check_sh "across the monitors' lease logs ($ngr grants) the tokens strictly rise in grant order and none repeats" \
	'[ "$tokens" = "$(sort -n -u <<<"$tokens")" ] && [ "$ngr" -ge $((ACTS[kill] + ACTS[stall])) ]'
if [ -s "$SUMMARY" ]; then
	s=$(cat "$SUMMARY")
	note "resource: $(jq -r '"\(.writes) writes, \(.accepted) accepted, \(.stale_rejected) stale refused, \(.tokens | length) tokens, min gap between holders \(.min_gap_ns / 1e6) ms"' <<<"$s")"
	check_sh "the resource accepted no stale write ($(jq .stale_accepted <<<"$s")) and refused the late writes of the $STALLS holders frozen across a monitor's death ($(jq .stale_rejected <<<"$s") refused)" \
		'[ "$(jq .stale_accepted <<<"$s")" -eq 0 ] && [ "$(jq .accepted <<<"$s")" -gt 100 ] && [ "$(jq .stale_rejected <<<"$s")" -ge "$STALLS" ] && [ "$STALLS" -ge 1 ]'
	check_sh "no two holders wrote with the same token ($(jq .same_token <<<"$s")), and no write was decided under a token after the first under a higher one ($(jq .overlaps <<<"$s") overlaps)" \
		'[ "$(jq .same_token <<<"$s")" -eq 0 ] && [ "$(jq .overlaps <<<"$s")" -eq 0 ]'
else
	not_ok "the resource wrote its summary"
fi
audit=$(python3 "$E2E_ROOT/tests/e2e/lease_audit.py" --db "$E2E_TMP/mon-1.db" --db "$E2E_TMP/mon-2.db" --db "$E2E_TMP/mon-3.db" \
	--lease 1 --writes "$WLOG" --offset "$OFF_BOOT" 2>&1)
note "audit against the monitors' lease logs: $audit"
check_sh "every write came from the agent its token was granted to, none decided at or after the next grant (margin $(jq -r .min_margin_ms <<<"$audit" 2>/dev/null) ms)" \
	'jq -e ".tokens_rising and .wrong_holder == 0 and .unknown_token == 0 and .after_next_grant == 0 and .accepted_stale == 0 and .writes > 0" <<<"$audit" >/dev/null'

expect_usage_error "vigil run --lease-nats with a URL that is not nats://" "--lease-nats: 'nats://198.18.0.254:14222,http://x' is not a list" \
	"$VIGIL" run --iface lo --no-auth --lease-nats nats://198.18.0.254:14222,http://x --db "$E2E_TMP/none.db"
expect_usage_error "vigil run --lease-host with a dot" "--lease-host: 'mon.1' is not a name" \
	"$VIGIL" run --iface lo --no-auth --lease-nats nats://198.18.0.254:14222 --lease-host mon.1 --db "$E2E_TMP/none.db"
check "the refused runs changed nothing (no database written)" test ! -e "$E2E_TMP/none.db"

e2e_finish
