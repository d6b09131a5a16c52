#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost (Debian 12 packages, no systemd), to test the study
# through snakemake-executor-plugin-slurm:  profiles/slurm/localhost-cluster.sh {install|start|stop|status}
#
#   install  apt-get install the daemons (slurmctld slurmd slurm-client munge), if missing
#   start    install, write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd; wait until the
#            node is idle. Idempotent: a cluster already answering is left as it is.
#   stop     stop the three daemons started by `start` (by their pid files)
#   status   exit 0 when the controller answers and the node is up
#
# There is no accounting (no slurmdbd), so `sacct` cannot see jobs: run snakemake with
#   --profile profiles/slurm --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2
# (the plugin's default status command is sacct whenever the binary exists, and it would wait forever).
# Needs root. Knobs (environment): SLURM_CPUS (default nproc), SLURM_MEM_MB (default 85% of RAM).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
STATE=/var/lib/vqdna-slurm      # spool, logs and pid files of this cluster
PACKAGES="slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge"

die() { echo "localhost-cluster: $*" >&2; exit 1; }

install() {
    [ "$(id -u)" = 0 ] || die "needs root (apt-get, daemons)"
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install $PACKAGES yourself"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $PACKAGES >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q $PACKAGES >/dev/null; } \
        || die "apt-get install $PACKAGES failed"
}

write_conf() {
    local cpus=${SLURM_CPUS:-$(nproc)}
    local mem_kb mem_mb
    mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
    mem_mb=${SLURM_MEM_MB:-$((mem_kb * 85 / 100 / 1024))}
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
    cat > "$CONF" <<EOF
# Written by vqdna profiles/slurm/localhost-cluster.sh: one node, localhost, no accounting.
ClusterName=vqdna-localhost
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { # pid file -> process alive
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

status() {
    command -v sinfo >/dev/null || return 1
    scontrol ping 2>/dev/null | grep -q UP || return 1
    sinfo -h -N -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

start() {
    install
    if status; then echo "localhost-cluster: already running"; return 0; fi
    write_conf
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    running /run/munge/munged.pid || runuser -u munge -- munged --pid-file /run/munge/munged.pid
    running "$STATE/slurmctld.pid" || slurmctld
    running "$STATE/slurmd.pid" || slurmd -N localhost
    for _ in $(seq 60); do
        if status; then echo "localhost-cluster: up ($(sinfo -h -o '%c CPUs, %m MB'))"; return 0; fi
        # a node left DOWN by an earlier run comes back once its slurmd registers
        scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
        sleep 1
    done
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    die "the node did not come up in 60 s (logs above, in $STATE/log)"
}

stop() {
    local pidfile
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
        if running "$pidfile"; then kill "$(cat "$pidfile")"; fi
    done
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
        for _ in $(seq 20); do running "$pidfile" || break; sleep 0.5; done
    done
    echo "localhost-cluster: stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) if status; then echo "localhost-cluster: up"; else echo "localhost-cluster: down"; exit 1; fi ;;
    *) die "usage: $0 {install|start|stop|status}" ;;
esac
