#!/usr/bin/env bash
# Start or stop a one-node SLURM cluster (slurmctld + slurmd + munged) for the tests.
#
#   tests/slurm/cluster.sh start STATE_DIR   # writes STATE_DIR/slurm.conf, starts the daemons,
#                                            # waits until the node is idle; prints SLURM_CONF=...
#   tests/slurm/cluster.sh stop STATE_DIR    # stops exactly the daemons this script started
#
# Needs root and Debian's slurm-wlm + munge (`make slurm-deps`). The config is written to
# STATE_DIR/slurm.conf and linked from /etc/slurm/slurm.conf, where srun inside a job looks
# (Snakemake's jobstep executor drops SLURM_CONF from the job's environment); an existing
# /etc/slurm/slurm.conf that is not such a link is never replaced (exit 3). `stop` removes
# the link again.
set -euo pipefail
action=${1:?usage: cluster.sh start|stop STATE_DIR}
state=$(mkdir -p "${2:?usage: cluster.sh start|stop STATE_DIR}" && cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
conf=$state/slurm.conf

stop_pidfile() {
    local pidfile=$1
    [[ -s $pidfile ]] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

case $action in
start)
    for tool in slurmctld slurmd munged sinfo; do
        command -v "$tool" >/dev/null || { echo "cluster.sh: $tool not installed (make slurm-deps)" >&2; exit 3; }
    done
    [[ $(id -u) == 0 ]] || { echo "cluster.sh: must run as root" >&2; exit 3; }
    host=$(hostname -s)
    cpus=$(nproc)
    memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    mkdir -p "$state/ctld" "$state/spool"
    sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY_MB@|$memory_mb|g" \
        -e "s|@STATE@|$state|g" -e "s|@CTLD_PORT@|${KMERVAE_SLURMCTLD_PORT:-6817}|g" \
        -e "s|@SLURMD_PORT@|${KMERVAE_SLURMD_PORT:-6818}|g" "$here/slurm.conf.in" > "$conf"
    # munge: reuse a running munged, else start one as the munge user and remember it
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [[ -s /etc/munge/munge.key ]] || { runuser -u munge -- mungekey --create 2>/dev/null || \
            (dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null && chown munge: /etc/munge/munge.key && chmod 400 /etc/munge/munge.key); }
        install -d -o munge -g munge -m 0755 /run/munge
        install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
        runuser -u munge -- /usr/sbin/munged
        cp /run/munge/munged.pid "$state/munged.pid"
        for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    fi
    system_conf=/etc/slurm/slurm.conf
    if [[ -e $system_conf || -L $system_conf ]] && [[ $(readlink "$system_conf") != "$conf" ]]; then
        echo "cluster.sh: $system_conf exists and is not ours; not touching a configured cluster" >&2
        exit 3
    fi
    mkdir -p /etc/slurm
    ln -sfn "$conf" "$system_conf"
    slurmctld -f "$conf"
    slurmd -f "$conf"
    export SLURM_CONF=$conf
    for _ in $(seq 120); do
        node_state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
        [[ $node_state == idle ]] && break
        sleep 0.5
    done
    if [[ $node_state != idle ]]; then
        echo "cluster.sh: node did not become idle (state '${node_state}'); see $state/*.log" >&2
        exit 4
    fi
    echo "SLURM_CONF=$conf"
    ;;
stop)
    stop_pidfile "$state/slurmd.pid"
    stop_pidfile "$state/slurmctld.pid"
    stop_pidfile "$state/munged.pid"
    if [[ $(readlink /etc/slurm/slurm.conf 2>/dev/null) == "$conf" ]]; then
        rm -f /etc/slurm/slurm.conf
    fi
    ;;
*)
    echo "usage: cluster.sh start|stop STATE_DIR" >&2
    exit 2
    ;;
esac
