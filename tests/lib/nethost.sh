# tests/lib/nethost.sh: test hosts for network tests — network namespaces
# joined to this host by a veth pair, each with HTTP, a TCP echo and a UDP
# echo (nethost_servers.py) — and a DNS server on 127.0.0.1 that knows their
# names (dns_server.py). Nothing here touches a real outside address: the
# hosts live in the RFC 5737 documentation ranges ("the internet" in tests)
# and in 10.213.0.0/16 ("a private host"). Everything is named after the
# test's pid and removed by nethost_cleanup (register it in the EXIT trap).
#
#   nethost_add KEY BASE      a host on a free /30 of BASE ("198.51.100" or
#                             "10.213.N"); sets NH_IP[KEY] (the host's address),
#                             NH_GW[KEY] (this host's address on that link),
#                             NH_NS[KEY]; ports NH_HTTP=8080 NH_ECHO=9000 NH_UDP=9001
#   nethost_add_tls KEY BASE CERT KEY   the same, plus HTTPS on NH_HTTPS=8443
#   nethost_dns NAME=IP...    start the DNS server; sets NH_DNS (127.0.0.1:PORT)
#   nethost_cleanup
declare -A NH_IP NH_GW NH_NS NH_PID
NH_HTTP=8080 NH_ECHO=9000 NH_UDP=9001 NH_HTTPS=8443
NH_DNS_PID=
NH_DIR=${NH_DIR:-$(mktemp -d /tmp/sf-nethost.XXXXXX)}

nethost_cleanup() {
    local k
    for k in "${!NH_PID[@]}"; do kill "${NH_PID[$k]}" 2>/dev/null; done
    [ -n "$NH_DNS_PID" ] && kill "$NH_DNS_PID" 2>/dev/null
    for k in "${!NH_NS[@]}"; do
        ip netns del "${NH_NS[$k]}" 2>/dev/null     # takes its veth end, and so the pair
    done
    rm -rf "$NH_DIR"
}

# A /30 of BASE.0/24 whose addresses no interface here has. Parallel tests
# pick under a lock, so two never take the same one.
nethost__pick() {
    local base=$1 k
    for k in $(shuf -i 0-63); do
        local gw="$base.$((4 * k + 1))" hostip="$base.$((4 * k + 2))"
        ip -o -4 addr show | grep -qE " ($gw|$hostip)/" && continue
        echo "$gw $hostip"
        return 0
    done
    return 1
}

nethost_add() {
    local key=$1 base=$2; shift 2
    local ns="sfth-$key-$$" a="sfa$$$key" b="sfb$$$key" pick gw hostip
    a=${a:0:15} b=${b:0:15}
    exec {lk}>/tmp/sf-nethost.lock
    flock "$lk"
    pick=$(nethost__pick "$base") || { flock -u "$lk"; echo "no free /30 in $base.0/24" >&2; return 1; }
    read -r gw hostip <<<"$pick"
    ip netns add "$ns" && NH_NS[$key]=$ns
    ip link add "$a" type veth peer name "$b" &&
        ip link set "$b" netns "$ns" &&
        ip addr add "$gw/30" dev "$a" && ip link set "$a" up &&
        ip -n "$ns" addr add "$hostip/30" dev "$b" && ip -n "$ns" link set "$b" up &&
        ip -n "$ns" link set lo up &&
        ip -n "$ns" route add default via "$gw"
    local rc=$?
    flock -u "$lk"
    exec {lk}>&-
    [ $rc -eq 0 ] || return 1
    NH_IP[$key]=$hostip
    NH_GW[$key]=$gw
    ip netns exec "$ns" python3 "$SF_SRC/tests/lib/nethost_servers.py" "$hostip" "$NH_HTTP" \
        "$NH_ECHO" "$NH_UDP" "$key" "$@" >"$NH_DIR/$key.out" 2>"$NH_DIR/$key.err" &
    NH_PID[$key]=$!
    local i
    for i in $(seq 1 100); do
        grep -q ready "$NH_DIR/$key.out" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "test host $key did not start:" >&2
    cat "$NH_DIR/$key.err" >&2
    return 1
}

nethost_add_tls() {
    local key=$1 base=$2 cert=$3 pkey=$4
    nethost_add "$key" "$base" --tls "$cert" "$pkey" "$NH_HTTPS"
}

nethost_dns() {
    python3 "$SF_SRC/tests/lib/dns_server.py" "$NH_DIR/dns.port" "$@" 2>"$NH_DIR/dns.err" &
    NH_DNS_PID=$!
    local i
    for i in $(seq 1 100); do
        [ -s "$NH_DIR/dns.port" ] && { NH_DNS="127.0.0.1:$(cat "$NH_DIR/dns.port")"; return 0; }
        sleep 0.05
    done
    cat "$NH_DIR/dns.err" >&2
    return 1
}

# How many questions for NAME reached the DNS server.
nethost_dns_asked() { grep -cx "$1" "$NH_DIR/dns.port.log" 2>/dev/null || true; }
