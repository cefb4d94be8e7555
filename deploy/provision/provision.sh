#!/usr/bin/env bash
# provision.sh: install rk on a Debian 12 machine and give it a role.
#
# Works on a live machine (Vagrant, a VM, bare metal: the role's unit is
# enabled and started) and inside a chroot at image-build time (no systemd
# running: units are only enabled, they start on the image's first boot).
# Safe to run again: files are replaced, nothing is started twice.
#
# What it does, each part only when asked for:
#   --packages          apt-get install the Debian packages rk needs
#   --bin-dir DIR       install rk's binaries from DIR into /usr/local/lib/rk
#                       (+ links in /usr/local/bin); the systemd units and
#                       their helper come from deploy/systemd next to this
#                       script and are installed whenever that dir exists
#   --example-image     build the busybox example image (rk.local/busybox:1)
#                       into the node agent's images dir (imported at start)
#   --role ROLE         write /etc/rk/*.env and enable (+ start, when live)
#                       the role's unit
set -euo pipefail

PROG=provision.sh
PORT=7443
AGENT_PORT=10250
LIB=/usr/local/lib/rk
ETC=/etc/rk
CP_DATA=/var/lib/rk/control-plane
AGENT_DATA=/var/lib/rk/node-agent
# rk-mkimage is optional (only --example-image needs it).
BINARIES=(rk-control-plane rk-node-agent rk-pause rk-shim rkctl)
# What rk needs on a node: CNI plugins (/usr/lib/cni), busybox-static for
# the example image, iproute2/nftables for networking and debugging, kmod so
# the kernel can load overlay/bridge/veth on demand.
PACKAGES=(containernetworking-plugins busybox-static iproute2 nftables kmod procps util-linux ca-certificates)

usage() {
    cat <<'EOF'
usage: provision.sh [--packages] [--bin-dir DIR] [--example-image]
                    [--role ROLE ROLE-OPTIONS] [--no-start]

  --packages           apt-get install what rk needs (containernetworking-plugins,
                       busybox-static, iproute2, nftables, kmod, ...)
  --bin-dir DIR        install rk-control-plane rk-node-agent rk-pause rk-shim
                       rkctl (and rk-mkimage if present) from DIR
  --example-image      build rk.local/busybox:1 into the node agent's images dir
  --role ROLE          none | replica-init | replica-join | node
  --no-start           only enable the role's unit (automatic in a chroot or
                       when systemd is not running)
  --wait               live only: return once the replica is created or the
                       node has joined (its first start may wait for a token)

role options:
  --ip IP              this machine's cluster address: replicas listen on
                       IP:7443, an agent serves streams on IP:10250 and
                       registers IP as its Node's InternalIP
  --server HOST:PORT   a replica to join through (replica-join, node)
  --token TOKEN        the cluster's join token (stored in /etc/rk, mode 600)
  --token-file FILE    read the token from FILE at first start, waiting for
                       it to appear (e.g. a shared folder the token is put in)
  --name NAME          the Node's name (node; default: the hostname)
  --pod-cidr CIDR      the node's Pod range (node; default 10.88.0.0/16)
  --publish DIR        replica-init: copy join-token and admin.conf into DIR
                       once the cluster is initialised
  --flags "FLAGS"      extra flags for `rk-control-plane init/join/run` or
                       `rk-node-agent run` (e.g. Raft timing)
EOF
}

say() { echo "$PROG: $*" >&2; }
die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

PACKAGES_WANTED=0 BIN_DIR="" EXAMPLE_IMAGE=0 ROLE="" NO_START=0 WAIT=0
IP="" SERVER="" TOKEN="" TOKEN_FILE="" NAME="" POD_CIDR="" PUBLISH="" FLAGS=""
while (($#)); do
    case $1 in
    --packages) PACKAGES_WANTED=1; shift ;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a value}; shift 2 ;;
    --example-image) EXAMPLE_IMAGE=1; shift ;;
    --role) ROLE=${2:?--role needs a value}; shift 2 ;;
    --no-start) NO_START=1; shift ;;
    --wait) WAIT=1; shift ;;
    --ip) IP=${2:?--ip needs a value}; shift 2 ;;
    --server) SERVER=${2:?--server needs a value}; shift 2 ;;
    --token) TOKEN=${2:?--token needs a value}; shift 2 ;;
    --token-file) TOKEN_FILE=${2:?--token-file needs a value}; shift 2 ;;
    --name) NAME=${2:?--name needs a value}; shift 2 ;;
    --pod-cidr) POD_CIDR=${2:?--pod-cidr needs a value}; shift 2 ;;
    --publish) PUBLISH=${2:?--publish needs a value}; shift 2 ;;
    --flags) FLAGS=${2?--flags needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done

[[ $EUID -eq 0 ]] || die "needs root"
[[ -r /etc/debian_version ]] || die "not a Debian system (no /etc/debian_version)"

# Live: systemd runs this system (so units can be started). In a chroot, or
# when systemd is not PID 1, units are only enabled.
LIVE=0
if [[ -d /run/systemd/system ]] && ! { command -v systemd-detect-virt >/dev/null && systemd-detect-virt -q --chroot; }; then
    LIVE=1
fi
((NO_START == 0)) || LIVE=0

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# ---------------------------------------------------------------- packages

install_packages() {
    say "installing Debian packages: ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed (is a Debian mirror reachable?)"
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null ||
        die "apt-get install ${PACKAGES[*]} failed"
}

# ---------------------------------------------------------------- binaries

install_binaries() {
    local b missing=()
    for b in "${BINARIES[@]}"; do [[ -x $BIN_DIR/$b ]] || missing+=("$b"); done
    ((${#missing[@]} == 0)) || die "$BIN_DIR lacks ${missing[*]} (build them: cargo build --release --bins)"
    mkdir -p "$LIB"
    for b in "${BINARIES[@]}" rk-mkimage; do
        [[ -x $BIN_DIR/$b ]] || continue
        # Replace, never overwrite in place: a running binary stays intact.
        install -m 755 "$BIN_DIR/$b" "$LIB/.$b.new"
        mv -f "$LIB/.$b.new" "$LIB/$b"
    done
    # rk-pause and rk-shim stay next to rk-node-agent only (it runs them from
    # there); the commands people type go on the PATH.
    for b in rk-control-plane rk-node-agent rkctl rk-mkimage; do
        [[ -x $LIB/$b ]] && ln -sfn "$LIB/$b" "/usr/local/bin/$b"
    done
    say "installed rk binaries from $BIN_DIR into $LIB"
}

# The units and their helper, from deploy/systemd beside this script; and
# this script itself, so a machine can be re-provisioned from its own copy.
# copy_if_changed MODE SRC DST: 0 when DST changed.
copy_if_changed() {
    if cmp -s "$2" "$3"; then return 1; fi
    install -m "$1" "$2" "$3"
}
install_units() {
    local src=$HERE/../systemd changed=0 u
    if [[ -f $src/rk-control-plane.service ]]; then
        mkdir -p "$LIB" /etc/systemd/system
        copy_if_changed 755 "$src/rk-bootstrap" "$LIB/rk-bootstrap" || true
        for u in rk-control-plane.service rk-node-agent.service; do
            if copy_if_changed 644 "$src/$u" "/etc/systemd/system/$u"; then changed=1; fi
        done
        if [[ $HERE != "$LIB/provision" ]]; then
            # Keep a copy of this script and its units for re-provisioning.
            mkdir -p "$LIB/provision" "$LIB/systemd"
            install -m 755 "${BASH_SOURCE[0]}" "$LIB/provision/provision.sh"
            install -m 644 "$src"/*.service "$LIB/systemd/"
            install -m 755 "$src/rk-bootstrap" "$LIB/systemd/rk-bootstrap"
        fi
        ((changed == 0)) || say "installed systemd units rk-control-plane.service, rk-node-agent.service"
    elif [[ ! -f /etc/systemd/system/rk-control-plane.service ]]; then
        die "no systemd units: neither $src nor /etc/systemd/system holds rk-control-plane.service"
    fi
    if ((LIVE && changed)); then systemctl daemon-reload; fi
}

# ---------------------------------------------------------------- image

example_image() {
    [[ -x $LIB/rk-mkimage ]] || die "--example-image needs rk-mkimage (in --bin-dir)"
    [[ -x /bin/busybox ]] || die "--example-image needs /bin/busybox (apt-get install busybox-static, or --packages)"
    mkdir -p "$AGENT_DATA/images"
    local out=$AGENT_DATA/images/busybox.tar
    "$LIB/rk-mkimage" "$out.new" rk.local/busybox:1 >/dev/null || die "rk-mkimage failed"
    mv -f "$out.new" "$out"
    # The agent skips archives modified in the last moments (maybe still
    # being copied) until its next scan: backdate so it imports at once.
    touch -d '-1 minute' "$out"
    say "example image rk.local/busybox:1 in $out"
}

# ---------------------------------------------------------------- roles

# write_env FILE NAME=VALUE...: an EnvironmentFile, values quoted for systemd.
write_env() {
    local file=$1 kv
    shift
    mkdir -p "$ETC"
    {
        echo "# Written by $PROG; read by the rk systemd units and rk-bootstrap."
        for kv in "$@"; do
            [[ -n ${kv#*=} ]] || continue
            printf '%s="%s"\n' "${kv%%=*}" "${kv#*=}"
        done
    } >"$file.new"
    chmod 600 "$file.new"
    mv -f "$file.new" "$file"
}

check_token_source() {
    [[ -n $TOKEN || -n $TOKEN_FILE ]] || die "--role $ROLE needs --token TOKEN or --token-file FILE"
    [[ -n $SERVER ]] || die "--role $ROLE needs --server HOST:PORT (a replica)"
}

enable_unit() { # UNIT FILE: FILE marks a finished first start (for --wait)
    local unit=$1 done_file=$2
    # --no-reload: a daemon-reload costs seconds on a slow VM; install_units
    # reloaded already when a unit file changed.
    systemctl enable --no-reload "$unit" >/dev/null 2>&1 || die "systemctl enable $unit failed"
    if ((LIVE)); then
        # No waiting: a first start may wait for a join token.
        systemctl start --no-block "$unit"
        say "enabled and started $unit (journalctl -u $unit)"
        if ((WAIT)); then
            say "waiting for $done_file"
            local t=0
            until [[ -f $done_file ]]; do
                ((t < 900)) || die "$unit did not finish its first start in 900 s; see journalctl -u $unit"
                sleep 1
                t=$((t + 1))
            done
        fi
    else
        say "enabled $unit (starts at boot)"
    fi
}

apply_role() {
    case $ROLE in
    "" | none) return 0 ;;
    replica-init | replica-join)
        [[ -n $IP ]] || die "--role $ROLE needs --ip IP (the address other members reach it on)"
        [[ $ROLE == replica-init ]] || check_token_source
        write_env "$ETC/control-plane.env" RK_ROLE="$ROLE" RK_DATA_DIR="$CP_DATA" \
            RK_LISTEN="$IP:$PORT" RK_SERVER="$SERVER" RK_TOKEN="$TOKEN" RK_TOKEN_FILE="$TOKEN_FILE" \
            RK_PUBLISH_DIR="$PUBLISH" RK_FLAGS="$FLAGS"
        enable_unit rk-control-plane.service "$CP_DATA/replica.json"
        ;;
    node)
        check_token_source
        local name=${NAME:-}
        write_env "$ETC/node-agent.env" RK_ROLE=node RK_DATA_DIR="$AGENT_DATA" \
            RK_SERVER="$SERVER" RK_TOKEN="$TOKEN" RK_TOKEN_FILE="$TOKEN_FILE" RK_NODE_NAME="$name" \
            RK_NODE_IP="$IP" RK_LISTEN="${IP:+$IP:$AGENT_PORT}" RK_POD_CIDR="$POD_CIDR" RK_FLAGS="$FLAGS"
        enable_unit rk-node-agent.service "$AGENT_DATA/agent.json"
        ;;
    *) die "unknown role '$ROLE' (none, replica-init, replica-join, node)" ;;
    esac
    echo "$ROLE" >"$ETC/role"
}

# ---------------------------------------------------------------- main

((PACKAGES_WANTED == 0)) || install_packages
[[ -z $BIN_DIR ]] || install_binaries
if [[ ${ROLE:-none} != none ]] || ((EXAMPLE_IMAGE)); then
    for b in "${BINARIES[@]}"; do
        [[ -x $LIB/$b ]] || die "rk is not installed ($LIB/$b missing): give --bin-dir DIR"
    done
fi
install_units
((EXAMPLE_IMAGE == 0)) || example_image
apply_role
say "done ($( ((LIVE)) && echo live || echo 'offline: units start at boot'))"
