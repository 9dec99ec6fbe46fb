#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Whether an instance requires authentication is visible (issue 14, "Also"):
# `vigil status` (text and --json) and /metrics say so, with --keys and with
# --no-auth, and `vigil status` still says so once the --no-auth daemon has
# stopped - the instance it left behind goes on accepting unsigned beats.
#
# Network: one namespace vg$$a with only loopback (skb-mode XDP on lo).
# shellcheck disable=SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools curl jq

setup_lo_test "vg$$a" auth
make_keys "$KEYS" 1 || die "vigil key gen --id 1"
echo 'agent 1' >"$CONF"
PORT=19747
RUN=(--iface lo --mode skb --config "$CONF" --db "$DB" --quiet --metrics "127.0.0.1:$PORT")

metric() { # the value of vigil_auth_required, from the daemon's /metrics
	in_ns "$NS" curl -sS --max-time 5 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
		awk '$1 == "vigil_auth_required" { print $2 }'
}
shows() { # WHAT TEXT JSON METRIC: status text line, --json field, /metrics (- for none)
	local text json m
	text=$("$VIGIL" status --pin-root "$PIN" | grep '^authentication:')
	json=$(status_json "$PIN" | jq -r .instance.auth_required)
	m=$( [ "$4" = - ] && echo - || metric)
	if [[ $text == "authentication: $2"* ]] && [ "$json" = "$3" ] && [ "$m" = "$4" ]; then
		ok "$1: status says \"$text\", --json auth_required $json, vigil_auth_required $m"
	else
		not_ok "$1: status \"$text\", --json auth_required '$json', vigil_auth_required '$m'"
	fi
}

start_daemon_or_die "vigil run --keys" d1 "$NS" "$PIN" "${RUN[@]}" --keys "$KEYS"
wait_for 5 sh -c "[ -n \"\$(in_ns '$NS' curl -s http://127.0.0.1:$PORT/metrics 2>/dev/null)\" ]"
shows "with --keys" required true 1
kill_bg d1 TERM
"$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1

start_daemon_or_die "vigil run --no-auth" d2 "$NS" "$PIN" "${RUN[@]}" --no-auth
wait_for 5 sh -c "[ -n \"\$(in_ns '$NS' curl -s http://127.0.0.1:$PORT/metrics 2>/dev/null)\" ]"
shows "with --no-auth" OFF false 0
kill_bg d2 TERM
shows "the --no-auth instance, no daemon running" OFF false -

e2e_finish
