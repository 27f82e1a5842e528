#!/bin/sh
# netns-machines.sh up|down [NAME...]: "machines" on one host for trying agents and the
# overlay: one network namespace per NAME (gantry-ovm-NAME), each with an eth0 on a LAN bridge
# of the host. The host holds the LAN's first address; machine i gets the (i+1)-th. Nothing
# routes between the machines' pods but the overlay. Idempotent; as root.
#
#   LAN_BRIDGE  the host's bridge         (default gantry-ov0)
#   LAN_PREFIX  the LAN's first 3 octets  (default 10.228.0)
#   NETNS_PREFIX the namespaces' prefix   (default gantry-ovm-)
set -eu
action=${1:-}
[ $# -gt 0 ] && shift
names=${*:-a b}
bridge=${LAN_BRIDGE:-gantry-ov0}
prefix=${LAN_PREFIX:-10.228.0}
nsprefix=${NETNS_PREFIX:-gantry-ovm-}

case "$action" in
up)
	ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
	ip addr replace "$prefix.1/24" dev "$bridge"
	ip link set "$bridge" up
	i=2
	for n in $names; do
		ns="$nsprefix$n"
		host="v-$ns"
		host=$(printf %.15s "$host")
		ip netns list | grep -qx "$ns.*" || ip netns add "$ns"
		if ! ip link show "$host" >/dev/null 2>&1; then
			ip link add "$host" type veth peer name eth0 netns "$ns"
		fi
		ip link set "$host" master "$bridge" up
		ip -n "$ns" addr replace "$prefix.$i/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
		# No default route: a packet for another machine's pods has the overlay's route or
		# none, so nothing reaches them through the host.
		echo "$ns: $prefix.$i"
		i=$((i + 1))
	done
	;;
down)
	for n in $names; do
		ns="$nsprefix$n"
		ip link del "$(printf %.15s "v-$ns")" 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
	ip link del "$bridge" 2>/dev/null || true
	;;
*)
	echo "usage: $0 up|down [NAME...]" >&2
	exit 2
	;;
esac
