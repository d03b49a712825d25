#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost for the tests.
#   scripts/slurm-local.sh start   install slurm-wlm + munge (apt-get), configure, start, wait for idle
#   scripts/slurm-local.sh stop    stop exactly the daemons this script started
# Needs root and apt-get. State lives under $BIOCODES_SLURM_DIR (default
# /tmp/biocodes-slurm). The config goes to /etc/slurm/slurm.conf, where every
# SLURM command looks, also inside jobs; an existing config that this script
# did not write is never touched.
set -euo pipefail
dir=${BIOCODES_SLURM_DIR:-/tmp/biocodes-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by biocodes scripts/slurm-local.sh"

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
}

configure() {
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" /etc/slurm
  if [ -e "$conf" ] && ! grep -qF "$marker" "$conf"; then
    echo "slurm-local: $conf exists and is not ours; not touching it" >&2
    exit 1
  fi
  local mem_kb real
  mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
  real=$((mem_kb / 1024 * 85 / 100))
  # Dask workers started from inside a job need CPUs of their own: declare
  # more CPUs than the machine has (config_overrides accepts the mismatch).
  cat > "$conf" <<CONF
$marker
ClusterName=biocodes
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
DefMemPerCPU=500
SchedulerType=sched/backfill
NodeName=localhost NodeAddr=127.0.0.1 CPUs=16 RealMemory=$real State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  if [ -S /run/munge/munge.socket.2 ] && pgrep -x munged >/dev/null; then
    return
  fi
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 600 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  touch "$dir/munged.started"
}

alive() {
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  install
  configure
  start_munge
  alive "$dir/slurmctld.pid" || slurmctld
  alive "$dir/slurmd.pid" || slurmd
  for _ in $(seq 60); do
    state=$(sinfo -h -o %t 2>/dev/null | head -n1 || true)
    if [ "$state" = "idle" ]; then
      echo "slurm-local: node localhost is idle"
      return 0
    fi
    if [ "$state" = "down" ] || [ "$state" = "drain" ]; then
      scontrol update nodename=localhost state=resume 2>/dev/null || true
    fi
    sleep 1
  done
  echo "slurm-local: node did not become idle; see $dir/log" >&2
  return 1
}

stop() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    if [ -s "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  if [ -e "$dir/munged.started" ] && [ -s /run/munge/munged.pid ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$dir/munged.started"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
