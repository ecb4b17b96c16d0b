#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (Debian/Ubuntu, as root) for `make test-slurm`.
#
# Idempotent: installs slurm-wlm and munge only when missing, rewrites /etc/slurm/slurm.conf only when this
# host's name, cores or memory changed, starts only the daemons that are not running, and returns once
# `sinfo` shows the node idle. No slurmdbd: job states come from squeue while SLURM holds the job and from
# the JSON outcome each wsbench job writes beside its logs (wsbench/slurm.py).
# Usage: sudo scripts/slurm-cluster.sh            (prints the node line of sinfo at the end)
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "slurm-cluster.sh: run as root (it installs packages and starts daemons)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
# slurmd drains a node whose RealMemory is above what it measures: keep 5 % below MemTotal
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)

# munge: one key, its folders owned by the munge user
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n | unmunge >/dev/null || { echo "slurm-cluster.sh: munged does not answer" >&2; exit 1; }
fi

install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
conf=$(cat <<CONF
# written by wsbench scripts/slurm-cluster.sh: a single-node cluster, no cgroups, no accounting
ClusterName=wsbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
)
changed=0
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
    printf '%s\n' "$conf" > /etc/slurm/slurm.conf
    changed=1
fi

running() {  # running PIDFILE: the daemon of that pid file is alive
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}
stop() {  # stop PIDFILE: end the daemon of that pid file (this script's own daemons only)
    if running "$1"; then kill "$(cat "$1")"; for _ in $(seq 50); do running "$1" || break; sleep 0.2; done; fi
}
if [ "$changed" = 1 ]; then  # a new configuration: restart what runs with the old one
    stop /run/slurm/slurmd.pid
    stop /run/slurm/slurmctld.pid
fi
running /run/slurm/slurmctld.pid || slurmctld
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
running /run/slurm/slurmd.pid || slurmd

state=""
for _ in $(seq 150); do
    state=$(sinfo -h -n "$host" -o '%T' 2>/dev/null | head -n1)
    case "$state" in
        idle|mixed|allocated) break ;;
        down*|drain*|drained*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
done
case "$state" in
    idle|mixed|allocated) sinfo -N -h -n "$host" -o '%N %T cpus=%c mem=%mMB partition=%P' ;;
    *) echo "slurm-cluster.sh: node $host is '$state', not idle, after 30 s (see /var/log/slurm/slurmd.log)" >&2
       exit 1 ;;
esac
