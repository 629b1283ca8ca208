#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine for mlrun's Slurm tests and for a local try:
# munged, slurmctld and slurmd on loopback, proctrack/linuxproc, task/none, select/cons_tres,
# accounting off. Everything lives in one directory (default /tmp/mlrun-slurm, or $1); the
# daemons run as root, which is what a throwaway test cluster on a CI runner needs.
#
#   scripts/slurm-local-start.sh [DIR]     then   export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm-local-stop.sh [DIR]
#
# Needs Debian's slurm-wlm and munge (`apt-get install slurm-wlm munge`). Prints the
# SLURM_CONF line to export on its last line of standard output.
set -euo pipefail

dir=${1:-/tmp/mlrun-slurm}
for prog in munged slurmctld slurmd sinfo; do
  command -v "$prog" >/dev/null || {
    echo "slurm-local-start: $prog not found; install Debian's slurm-wlm and munge" >&2
    exit 1
  }
done

mkdir -p "$dir"/{state,spool,log,munge}
dir=$(cd "$dir" && pwd)
host=$(hostname -s)
# The node advertises more CPUs than the machine has, so that many one-CPU test jobs run at
# once on a 2-core runner (as they would on a real cluster's many nodes); slurmd accepts it
# because of config_overrides.
cpus=${MLRUN_SLURM_CPUS:-64}
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)

# munge: one key for this cluster, its own socket so it never disturbs a system munged.
key=$dir/munge/munge.key
if [ ! -s "$key" ]; then
  dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
fi
chmod 0700 "$dir/munge"
chmod 0400 "$key"
sock=$dir/munge/munge.socket
if [ -f "$dir/munge/munged.pid" ] && kill -0 "$(cat "$dir/munge/munged.pid")" 2>/dev/null; then
  :
else
  munged --force --key-file="$key" --socket="$sock" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed"
fi

cat >"$dir/slurm.conf" <<CONF
# Written by scripts/slurm-local-start.sh: a single-node test cluster.
ClusterName=mlrun-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${MLRUN_SLURMCTLD_PORT:-6817}
SlurmdPort=${MLRUN_SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=sched_interval=1
# Short so that a test job killed for time, or a node that disappears, is noticed quickly.
SlurmdTimeout=10
MessageTimeout=5
KillWait=2
InactiveLimit=0
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

export SLURM_CONF=$dir/slurm.conf
if ! { [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; }; then
  slurmctld -f "$SLURM_CONF" -i
fi
if ! { [ -f "$dir/slurmd.pid" ] && kill -0 "$(cat "$dir/slurmd.pid")" 2>/dev/null; }; then
  slurmd -f "$SLURM_CONF"
fi

# Up when the node is idle; bounded (daemons that fail to start say why in their logs).
for _ in $(seq 1 120); do
  state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
  case "$state" in
    idle*|mix*|alloc*) echo "SLURM_CONF=$SLURM_CONF"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.5
done
echo "slurm-local-start: the node did not come up; see $dir/log/" >&2
tail -n 20 "$dir"/log/*.log >&2 || true
exit 1
