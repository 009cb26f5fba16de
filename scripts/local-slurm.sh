#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for testing colop's job scripts on a real Slurm:
#   scripts/local-slurm.sh start    install slurm-wlm and munge if missing, start munged,
#                                   slurmctld and slurmd in the background (idempotent)
#   scripts/local-slurm.sh status   show the daemons and the node
#   scripts/local-slurm.sh stop     stop the daemons started here
#   scripts/local-slurm.sh env      print the export line clients need (SLURM_CONF)
# Works as root without systemd (e.g. in a container). Everything lives under
# $COLOP_SLURM_DIR (default /tmp/colop-slurm): slurm.conf, munge key and socket, state, logs.
# Clients (sbatch, srun, squeue) need SLURM_CONF=$COLOP_SLURM_DIR/slurm.conf in the environment.
set -euo pipefail

DIR="${COLOP_SLURM_DIR:-/tmp/colop-slurm}"
CONF="$DIR/slurm.conf"
SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$CONF"

die() { echo "local-slurm: $*" >&2; exit 1; }

alive() { # alive PIDFILE: the process in PIDFILE runs
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  local need=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    echo "local-slurm: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

write_config() {
  local host node
  host="$(hostname -s)"
  # The node's real CPUs, sockets, cores, threads and memory, as slurmd sees them.
  node="$(slurmd -C | head -n 1)"
  [[ "$node" == NodeName=* ]] || die "slurmd -C did not describe this node: $node"
  getent hosts "$host" >/dev/null || die "host name $host does not resolve; add it to /etc/hosts"
  cat >"$CONF.tmp" <<EOF
# Single-node test cluster written by scripts/local-slurm.sh. Do not use in production.
ClusterName=colop
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${COLOP_SLURMCTLD_PORT:-6917}
SlurmdPort=${COLOP_SLURMD_PORT:-6918}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5
MpiDefault=none
ReturnToService=2
# Jobs may be requeued (sbatch --requeue, scontrol requeue); preempted or failed-node jobs too.
JobRequeue=1
KillWait=30
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$CONF.tmp" "$CONF"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root here)"
  install_packages
  mkdir -p "$DIR"/{state,spool,run,log,munge}
  chmod 0755 "$DIR" "$DIR/munge"
  # (Re)write the configuration while the controller is down, so edits here take effect.
  alive "$DIR/run/slurmctld.pid" || write_config

  if ! alive "$DIR/run/munged.pid"; then
    if [ ! -s "$DIR/munge/munge.key" ]; then
      dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
      chmod 0400 "$DIR/munge/munge.key"
    fi
    munged --force --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
      --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
      --seed-file="$DIR/munge/munged.seed"
  fi
  if ! alive "$DIR/run/slurmctld.pid"; then
    slurmctld -f "$CONF"
  fi
  if ! alive "$DIR/run/slurmd.pid"; then
    slurmd -f "$CONF"
  fi

  # Wait until the node accepts work.
  local state=""
  for _ in $(seq 1 60); do
    state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)"
    case "$state" in
      idle|mix|alloc) break ;;
      down*|drain*) scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  case "$state" in
    idle|mix|alloc) ;;
    *) die "node state is '${state:-unknown}' after 60 s; see $DIR/log/" ;;
  esac
  echo "local-slurm: up (node $(hostname -s): $state); export SLURM_CONF=$CONF"
}

stop() {
  local f pid
  for f in slurmd slurmctld munged; do
    if alive "$DIR/run/$f.pid"; then
      pid="$(cat "$DIR/run/$f.pid")"
      kill "$pid"
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      echo "local-slurm: stopped $f ($pid)"
    fi
    rm -f "$DIR/run/$f.pid"
  done
}

status() {
  local f rc=0
  for f in munged slurmctld slurmd; do
    if alive "$DIR/run/$f.pid"; then
      echo "$f: running (pid $(cat "$DIR/run/$f.pid"))"
    else
      echo "$f: stopped"; rc=1
    fi
  done
  [ "$rc" -eq 0 ] && sinfo -N -l
  return "$rc"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|restart|env" >&2; exit 2 ;;
esac
