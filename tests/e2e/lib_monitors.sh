# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
# shellcheck shell=bash disable=SC2034,SC2317
#
# Several monitor hosts on one network, for the tests of agents beating to
# several monitors (docs/monitors.md) and of leases that outlive their
# monitor (docs/leases.md). Source it after lib.sh and e2e_init:
#
#   monitors_net N HOSTS...  a bridge namespace ($NS_BR, bridge 198.18.0.254/24)
#                            and N monitor namespaces vg$$m1.. (MON_NS[i]),
#                            each with a veth on the bridge at 198.18.0.i
#                            (MON_IF[i]; native XDP; its bridge-side peer runs
#                            a no-op XDP program, so XDP_TX acknowledgements
#                            get through), plus one namespace per HOST name
#                            (vg$$HOST, address HOST_ADDR[HOST]: 198.18.0.(10+k))
#   monitor_up I NAME ARGS   `vigil run` on monitor I's interface (its pin root
#                            MON_PIN[I], database $E2E_TMP/mon-I.db), started as
#                            NAME; the instance is kept if it exists
#   monitor_host_dies I NAME a dead host: SIGKILL of the daemon NAME, its XDP,
#                            sweeper and pins removed, its link down
#   monitor_host_back I      link up again (start a daemon with monitor_up)
#   nats_cluster             a 3-node nats-server cluster with JetStream on
#                            198.18.0.254:14222-14224 in $NS_BR ($NATS_URLS)
#
# Everything stays inside the namespaces the test made (198.18.0.0/24).

B=$(dirname "$VIGIL") # xdp_pass.bpf.o and the test helpers are built next to vigil
declare -A HOST_ADDR=()
MON_NS=() MON_IF=() MON_PIN=()

monitors_net() {
	local n=$1 i k=0 h ns
	shift
	[ -e "$B/xdp_pass.bpf.o" ] || die "$B/xdp_pass.bpf.o is not built (run make)"
	NS_BR=vg$$x
	new_netns "$NS_BR" || return 1
	ip -n "$NS_BR" link add "vg$$br" type bridge &&
		ip -n "$NS_BR" addr add 198.18.0.254/24 dev "vg$$br" &&
		ip -n "$NS_BR" link set "vg$$br" up || return 1
	for ((i = 1; i <= n; i++)); do
		MON_NS[i]=vg$$m$i
		MON_IF[i]=vg$$m$i
		new_pin_root "MON_PIN[$i]" "mon$i"
		new_netns "${MON_NS[i]}" &&
			ip link add "${MON_IF[i]}" netns "${MON_NS[i]}" type veth peer name "vg$$q$i" \
				netns "$NS_BR" &&
			ip -n "${MON_NS[i]}" addr add "198.18.0.$i/24" dev "${MON_IF[i]}" &&
			ip -n "${MON_NS[i]}" link set "${MON_IF[i]}" up &&
			ip -n "$NS_BR" link set "vg$$q$i" master "vg$$br" &&
			ip -n "$NS_BR" link set "vg$$q$i" up &&
			ip -n "$NS_BR" link set dev "vg$$q$i" xdpdrv obj "$B/xdp_pass.bpf.o" sec xdp ||
			return 1
	done
	for h in "$@"; do
		k=$((k + 1))
		ns=vg$$$h
		HOST_ADDR[$h]=198.18.0.$((10 + k))
		new_netns "$ns" &&
			ip link add "vg$$a$k" netns "$ns" type veth peer name "vg$$p$k" netns "$NS_BR" &&
			ip -n "$ns" addr add "${HOST_ADDR[$h]}/24" dev "vg$$a$k" &&
			ip -n "$ns" link set "vg$$a$k" up &&
			ip -n "$NS_BR" link set "vg$$p$k" master "vg$$br" &&
			ip -n "$NS_BR" link set "vg$$p$k" up || return 1
	done
	for ((i = 1; i <= n; i++)); do
		wait_for 5 sh -c "ip -n ${MON_NS[i]} link show ${MON_IF[i]} | grep -q LOWER_UP" || return 1
	done
}

monitor_up() {
	local i=$1 name=$2
	shift 2
	start_daemon "$name" "${MON_NS[i]}" "${MON_PIN[i]}" --iface "${MON_IF[i]}" \
		--db "$E2E_TMP/mon-$i.db" --metrics off "$@"
}

monitor_host_dies() {
	kill_bg "$2" KILL
	"$VIGIL" detach --pin-root "${MON_PIN[$1]}" >/dev/null 2>&1
	ip -n "${MON_NS[$1]}" link set "${MON_IF[$1]}" down
}

monitor_host_back() {
	ip -n "${MON_NS[$1]}" link set "${MON_IF[$1]}" up &&
		wait_for 5 sh -c "ip -n ${MON_NS[$1]} link show ${MON_IF[$1]} | grep -q LOWER_UP"
}

NATS_URLS=nats://198.18.0.254:14222,nats://198.18.0.254:14223,nats://198.18.0.254:14224
nats_cluster() {
	local n
	for n in 1 2 3; do
		mkdir -p "$E2E_TMP/n$n"
		cat >"$E2E_TMP/n$n.conf" <<EOC
server_name: n$n
listen: 198.18.0.254:$((14221 + n))
jetstream {
  store_dir: "$E2E_TMP/n$n"
}
cluster {
  name: vigil-test
  listen: 198.18.0.254:$((16221 + n))
  routes: [
    nats-route://198.18.0.254:16222
    nats-route://198.18.0.254:16223
    nats-route://198.18.0.254:16224
  ]
}
EOC
		start_bg "nats-$n" "$NS_BR" nats-server -c "$E2E_TMP/n$n.conf"
	done
	for n in 1 2 3; do
		wait_for 10 in_ns "$NS_BR" bash -c "exec 3<>/dev/tcp/198.18.0.254/$((14221 + n))" ||
			return 1
	done
}
