#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The shipped Prometheus rules and Grafana dashboard, against the real tools
# and a running daemon:
#   1. promtool check rules accepts deploy/prometheus/vigil-rules.yml, and
#      promtool test rules passes tests/e2e/prometheus/vigil-rules.test.yml
#      (every alert silent, then firing with its labels and annotations; the
#      recording rules' values).
#   2. deploy/grafana/vigil.json is a dashboard: JSON, unique panel ids, each
#      panel placed on the grid with a Prometheus target through the
#      datasource variable, the rows the README promises.
#   3. no drift: every metric the rules and the dashboard name exists on
#      /metrics of a running daemon (with keys, a lease, a dead agent), with
#      the labels they match on (promql_names.py, which is shown to catch a
#      drifted rule); the lease series agree with `vigil lease list`.
#   4. a real Prometheus (Debian's, 2.42), started by the test in its own
#      network namespace, scrapes the daemon every second with the shipped
#      rules: the target is up, VigilAgentDown fires for the agent that was
#      killed (and VigilAuthenticationOff does not, the daemon has keys), a
#      recording rule counts it, and every dashboard expression runs.
#
# One network namespace with only loopback; skb-mode XDP on its lo.
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools prometheus promtool curl

RULES=$E2E_ROOT/deploy/prometheus/vigil-rules.yml
RULES_TEST=$E2E_ROOT/tests/e2e/prometheus/vigil-rules.test.yml
DASH=$E2E_ROOT/deploy/grafana/vigil.json
NAMES=$E2E_ROOT/tests/e2e/promql_names.py
METRICS=127.0.0.1:19749
PROM=http://127.0.0.1:19090

# ------------------------------------------------------------ the rules
if promtool check rules "$RULES" >"$E2E_TMP/check.out" 2>&1; then
	ok "promtool check rules: $(grep -o 'SUCCESS.*' "$E2E_TMP/check.out")"
else
	show_file "promtool check rules" "$E2E_TMP/check.out"
	not_ok "promtool check rules accepts deploy/prometheus/vigil-rules.yml"
fi
n_tests=$(grep -c 'alertname:\|- expr:' "$RULES_TEST")
if promtool test rules "$RULES_TEST" >"$E2E_TMP/test.out" 2>&1; then
	ok "promtool test rules: $n_tests alert and recording-rule expectations hold"
else
	show_file "promtool test rules" "$E2E_TMP/test.out" 40
	not_ok "promtool test rules tests/e2e/prometheus/vigil-rules.test.yml"
fi
untested=$(python3 - "$RULES" "$RULES_TEST" <<'EOF'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
tests = open(sys.argv[2]).read()
names = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
print(" ".join(n for n in names if "alertname: " + n not in tests))
EOF
)
check "every alerting rule has an expectation in the fixtures${untested:+ (missing: $untested)}" \
	[ -z "$untested" ]

# --------------------------------------------------------- the dashboard
dash_problems=$(python3 - "$DASH" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
panels = d["panels"]
ids = [p["id"] for p in panels]
if len(ids) != len(set(ids)):
    bad.append("panel ids repeat")
rows = [p["title"] for p in panels if p["type"] == "row"]
for want in ["Fleet", "Detection lateness", "Beats and refusals", "Sweeper", "Event path", "Leases"]:
    if want not in rows:
        bad.append(f"no row {want}")
for p in panels:
    g = p.get("gridPos", {})
    if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24:
        bad.append(f"{p['title']}: gridPos {g}")
    if p["type"] == "row":
        continue
    if not p.get("targets") or any(not t.get("expr") for t in p["targets"]):
        bad.append(f"{p['title']}: no PromQL target")
    if p.get("datasource", {}).get("uid") != "${datasource}":
        bad.append(f"{p['title']}: datasource is not the variable")
if [v["name"] for v in d["templating"]["list"]] != ["datasource", "instance"]:
    bad.append("variables are not datasource, instance")
print("; ".join(bad) or f"{len(panels) - len(rows)} panels in {len(rows)} rows")
EOF
)
check "deploy/grafana/vigil.json: $dash_problems" grep -q '^[0-9]* panels in 6 rows$' <<<"$dash_problems"

# ------------------------------------------------- a daemon to look at
setup_lo_test "vg$$pr" prometheus
make_keys "$KEYS" 1-4 || die "vigil key gen --id 1-4"
cat >"$CONF" <<EOF
defaults interval-min-ms=20 interval-max-ms=1000 multiplier=3
agent 1 name=web-1 group=web
agent 2 name=web-2 group=web
agent 3 name=db-3 group=db
agent 4 name=db-4 group=db
lease primary id=1 duration-ms=1000 candidates=3:20,4:10
EOF
start_daemon_or_die "vigil run --metrics $METRICS starts" daemon "$NS" "$PIN" \
	--iface lo --mode skb --config "$CONF" --keys "$KEYS" --db "$DB" --quiet --metrics "$METRICS"
for i in 1 2 3 4; do
	start_bg "beat-$i" "$NS" "$VIGIL" beat --id "$i" --target 127.0.0.1 --interval-ms 50 --keys "$KEYS"
done
all_alive() { [ "$(count_state "$(status_json "$PIN")" alive)" -eq 4 ]; }
wait_for 5 all_alive || die "agents 1-4 are ALIVE"
lease_json() { "$VIGIL" lease list --json --pin-root "$PIN" --db "$DB" 2>/dev/null; }
held() { lease_json | grep -q '"state":"held"'; }
wait_for 5 held || note "lease primary not held: $(lease_json)"
kill_bg beat-2 KILL
agent2_dead() { [ "$(agent_field "$(status_json "$PIN")" 2 state)" = dead ]; }
wait_for 5 agent2_dead || die "agent 2 is DEAD after its beater is killed"

M=$E2E_TMP/metrics.txt
in_ns "$NS" curl -sf "http://$METRICS/metrics" >"$M" || die "GET http://$METRICS/metrics"
# The lease series say what `vigil lease list` says.
want=$(lease_json | jq -r '.. | objects | select(.name? == "primary") | "\(.holder) \(.token)"' | head -n 1)
got=$(awk '/^vigil_lease_(held|holder|token)\{lease_id="1",lease="primary"\}/ { v[$1] = $2 }
	END { print v["vigil_lease_held{lease_id=\"1\",lease=\"primary\"}"], v["vigil_lease_holder{lease_id=\"1\",lease=\"primary\"}"], v["vigil_lease_token{lease_id=\"1\",lease=\"primary\"}"] }' "$M")
check "vigil_lease_held, _holder, _token of lease primary: '$got', as vigil lease list says (holder, token '$want')" \
	[ "$got" = "1 $want" ]
if python3 "$NAMES" check --rules "$RULES" --dashboard "$DASH" --metrics "$M" >"$E2E_TMP/names.out" 2>&1; then
	ok "no drift: $(cat "$E2E_TMP/names.out")"
else
	show_file "metrics named but not served" "$E2E_TMP/names.out" 40
	not_ok "every metric and label the rules and the dashboard name is on /metrics"
fi
# The check itself: a rule naming a metric vigil does not serve, one matching
# on a label it lacks, one on a state that does not exist.
python3 - "$RULES" "$E2E_TMP/drifted.yml" <<'EOF'
import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
r["groups"][0]["rules"] += [
    {"record": "x:a", "expr": "rate(vigil_beats_dropped_total[1m])"},
    {"record": "x:b", "expr": 'sum by (reason) (vigil_beats_total{reason="bad_tag"})'},
    {"alert": "X", "expr": 'vigil_agents{state="zombie"} > 0'},
]
yaml.safe_dump(r, open(sys.argv[2], "w"))
EOF
python3 "$NAMES" check --rules "$E2E_TMP/drifted.yml" --dashboard "$DASH" --metrics "$M" >"$E2E_TMP/drift.out" 2>&1
drift_rc=$?
check_sh "... and it sees drift: a rule on vigil_beats_dropped_total, on vigil_beats_total{reason=...}, on state=\"zombie\" give 3 problems and exit 1 (exit $drift_rc, $(wc -l <"$E2E_TMP/drift.out") lines)" \
	'[ "$drift_rc" -eq 1 ] && [ "$(wc -l <"$E2E_TMP/drift.out")" -eq 3 ]'

# ------------------------------------------------------ a real Prometheus
cat >"$E2E_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['$RULES']
scrape_configs:
  - job_name: vigil
    static_configs: [{targets: ['$METRICS']}]
EOF
start_bg prometheus "$NS" prometheus --config.file="$E2E_TMP/prometheus.yml" \
	--storage.tsdb.path="$E2E_TMP/prometheus-data" --web.listen-address="${PROM#http://}" \
	--log.level=warn
if ! wait_for 20 in_ns "$NS" curl -sf "$PROM/-/ready"; then
	show_file "prometheus stderr" "$E2E_TMP/prometheus.err"
	die "Prometheus starts on ${PROM#http://} in $NS"
fi
ok "Prometheus $(prometheus --version 2>&1 | awk 'NR == 1 { print $3 }') is ready on ${PROM#http://} in $NS"

prom() { # prom PATH [CURL ARGS...]: GET from Prometheus' API
	local path=$1
	shift
	in_ns "$NS" curl -sf -G "$PROM$path" "$@"
}
target_up() {
	[ "$(prom /api/v1/targets | jq -r '.data.activeTargets[] | select(.labels.job == "vigil") | .health')" = up ]
}
check "Prometheus scrapes the daemon: target job=vigil is up" wait_for 10 target_up
firing() { # firing ALERTNAME JQ_FILTER: the alert is firing
	prom /api/v1/alerts | jq -e --arg n "$1" "[.data.alerts[] | select(.labels.alertname == \$n and .state == \"firing\") | select($2)] | length > 0" >/dev/null
}
if wait_for 15 firing VigilAgentDown '.labels.agent_id == "2"'; then
	a=$(prom /api/v1/alerts | jq -c '.data.alerts[] | select(.labels.alertname == "VigilAgentDown") | [.labels.agent_id, .labels.name, .labels.group, .labels.severity, .annotations.summary]')
	ok "the rule VigilAgentDown fires in Prometheus for the killed agent: $a"
else
	prom /api/v1/alerts | jq -c '.data.alerts[]' | while IFS= read -r l; do note "$l"; done
	not_ok "the rule VigilAgentDown fires in Prometheus for the killed agent 2"
fi
check "... and only for it (agents 1, 3, 4 beat)" \
	[ "$(prom /api/v1/alerts | jq -c '[.data.alerts[] | select(.labels.alertname == "VigilAgentDown") | .labels.agent_id]')" = '["2"]' ]
check_sh "VigilAuthenticationOff does not fire: the daemon runs with --keys" \
	'! firing VigilAuthenticationOff true'
dead_sum() { [ "$(prom /api/v1/query --data-urlencode 'query=job:vigil_agents:sum{state="dead"}' | jq -r '.data.result[0].value[1]')" = 1 ]; }
check "the recording rule job:vigil_agents:sum{state=\"dead\"} is 1" wait_for 5 dead_sum

# Every dashboard expression runs in Prometheus (syntax, functions, types).
n=0 bad=0 with_data=0
while IFS= read -r e; do
	n=$((n + 1))
	r=$(prom /api/v1/query --data-urlencode "query=$(jq -r . <<<"$e")")
	if [ "$(jq -r .status <<<"$r" 2>/dev/null)" != success ]; then
		bad=$((bad + 1))
		note "fails: $e: $(jq -r .error <<<"$r" 2>/dev/null)"
	elif [ "$(jq '.data.result | length' <<<"$r")" -gt 0 ]; then
		with_data=$((with_data + 1))
	fi
done < <(python3 "$NAMES" exprs --rules "$RULES" --dashboard "$DASH")
check_sh "all $n expressions of the rules and the dashboard run in Prometheus ($with_data return data already)" \
	'[ "$bad" -eq 0 ] && [ "$n" -gt 50 ]'

kill_bg prometheus TERM
kill_bg daemon TERM
check "vigil run stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]

e2e_finish
