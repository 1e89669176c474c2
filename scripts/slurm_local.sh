#!/usr/bin/env bash
# A single-node SLURM on this machine, for trying and testing `launcher=slurm` (needs root).
#
#   sudo scripts/slurm_local.sh start    # munged, slurmctld, slurmd; this host is controller and node
#   sudo scripts/slurm_local.sh status
#   sudo scripts/slurm_local.sh stop
#
# Installs Debian's slurm-wlm and munge if missing, writes /etc/slurm/slurm.conf for this host
# (all its CPUs and memory, one partition `debug`), and waits until the node is idle. No cgroups:
# process tracking by /proc, which is what works in containers and small VMs.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/lib/selfsup-slurm}
CONF=/etc/slurm/slurm.conf

# A live process of this name (a zombie left by a daemon's fork does not count).
alive() { [ -n "$(ps -C "$1" -o stat= 2>/dev/null | grep -v '^Z')" ]; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "slurm_local.sh $1: needs root (it starts munged, slurmctld and slurmd)" >&2
        exit 1
    fi
}

start() {
    need_root start
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge; }
    fi
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" /var/log/slurm /run/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || create-munge-key -f
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 400 /etc/munge/munge.key
    alive munged || su -s /bin/sh munge -c /usr/sbin/munged
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: one node, this host.
ClusterName=selfsup
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if ! alive slurmctld; then
        # No controller: whatever slurmd or slurmstepd is left belongs to a cluster that is gone (a
        # slurmd still shutting down never registers with the new controller; the node stays unk*).
        end_daemons slurmd slurmstepd
        # -c: a fresh cluster. Jobs saved by one that was stopped (or whose machine was) are not
        # brought back to run again.
        slurmctld -c
    fi
    alive slurmd || slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
            sinfo
            return 0
        fi
        sleep 1
    done
    echo "slurm_local.sh: the node did not become idle in 60 s; see /var/log/slurm/" >&2
    sinfo >&2 || true
    exit 1
}

# SIGTERM, up to 30 s to exit, then SIGKILL: gone before returning, so that a start right after
# starts new ones.
end_daemons() {
    local name
    for name in "$@"; do
        pkill -x "$name" 2>/dev/null || true
        for _ in $(seq 30); do alive "$name" || continue 2; sleep 1; done
        echo "slurm_local.sh: $name did not exit in 30 s; killing it" >&2
        pkill -9 -x "$name" 2>/dev/null || true
        for _ in $(seq 10); do alive "$name" || continue 2; sleep 1; done
    done
}

stop() {
    need_root stop
    # The cluster's jobs end with it (scontrol shutdown alone leaves their slurmstepd running), and
    # the controller stays up until they have: a cancelled step reports its end to slurmctld, and
    # without one its slurmstepd (and so slurmd) lingers for minutes.
    if squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null; then
        for _ in $(seq 60); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 1; done
    fi
    scontrol shutdown 2>/dev/null || true
    end_daemons slurmd slurmstepd slurmctld munged
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) sinfo ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
