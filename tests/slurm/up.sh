#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this machine for tests/test_slurm.py.
#
#   bash tests/slurm/up.sh      # idempotent: a no-op (< 1 s) when the cluster is up
#   bash tests/slurm/down.sh    # stops the daemons this script started
#
# Installs Debian's slurm-wlm and munge when missing (needs root and apt), writes
# /etc/slurm/slurm.conf for this host (real hostname, CPUs and memory from `slurmd -C`,
# proctrack/linuxproc, task/none, no accounting database, MinJobAge high so `squeue`
# still reports finished jobs), then starts munged, `slurmctld -c` and slurmd.
#
# It always exits 0 (so `.ci/run` can call it unconditionally). When the cluster
# cannot be started it says why and writes that reason to $STATE/unavailable, which
# the slurm tests show as their skip reason. Nothing here talks to another machine:
# the controller and the node both listen on 127.0.0.1.
set -u

STATE=${DBN_BACKFILL_SLURM_STATE:-/tmp/dbn-backfill-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
MARK="# written by dbn-backfill tests/slurm/up.sh"

mkdir -p "$STATE" 2>/dev/null || true

say() { echo "slurm/up.sh: $*"; }

unavailable() {
    say "SLURM NOT AVAILABLE: $*"
    say "the slurm tests will be skipped (reason in $STATE/unavailable)"
    echo "$*" >"$STATE/unavailable" 2>/dev/null || true
    exit 0
}

cluster_ready() {
    # The controller answers, the node is idle (or mixed/allocated: up and usable).
    command -v sinfo >/dev/null 2>&1 || return 1
    timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
    timeout 10 sinfo --noheader --responding -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

# Already up (the usual case in a dev session, and the second .ci/run step): done.
if cluster_ready; then
    rm -f "$STATE/unavailable"
    say "SLURM already up: $(sinfo --noheader -o '%P %D %t %N' | head -1)"
    exit 0
fi

[ "$(id -u)" = 0 ] || unavailable "up.sh needs root to install and start SLURM (running as $(id -un))"

# 1. Packages.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || unavailable "slurm-wlm is not installed and there is no apt-get"
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq >"$STATE/apt.log" 2>&1 \
        || unavailable "apt-get update failed (see $STATE/apt.log)"
    timeout 600 apt-get install -y -qq --no-install-recommends slurm-wlm munge \
        >>"$STATE/apt.log" 2>&1 || unavailable "apt-get install slurm-wlm munge failed (see $STATE/apt.log)"
fi

# 2. Stop whatever half-started cluster an earlier call left (by pid file only).
bash "$(dirname "$0")/down.sh" --quiet

# 3. munge: a key, its run directory, the daemon (as the munge user).
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! runuser -u munge -- /usr/sbin/munged >"$STATE/munged.out" 2>&1; then
    /usr/sbin/munged --force >>"$STATE/munged.out" 2>&1 \
        || unavailable "munged did not start: $(tail -1 "$STATE/munged.out")"
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || unavailable "munge credentials do not work"

# 4. slurm.conf for this host. Only a file this script wrote is ever replaced.
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    unavailable "$CONF exists and was not written by up.sh; not touching it"
fi
HOST=$(hostname -s)
NODE=$(slurmd -C 2>/dev/null | head -1)
case "$NODE" in NodeName=*) ;; *) unavailable "slurmd -C gave no node description" ;; esac
CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$NODE")
REAL_MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE")
# Leave 10% of the memory to the OS; each CPU gets an equal share by default.
MEM=$((REAL_MEM * 9 / 10))
DEF_MEM=$((MEM / CPUS))
mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
cat >"$CONF" <<CONF
$MARK: a one-node test cluster, no accounting database.
ClusterName=dbnbackfill
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No accounting database (slurmdbd): sacct cannot answer, squeue must. Every finished
# job is still recorded, one line each, in the job completion log.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
# Finished jobs stay visible to squeue/scontrol for a day (Snakemake's slurm plugin
# polls squeue; the default 300 s is too short for that).
MinJobAge=86400
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
# Debian's cgroup.conf is not needed without cgroup plugins; keep an empty one quiet.
[ -e "$CONF_DIR/cgroup.conf" ] || echo "$MARK" >"$CONF_DIR/cgroup.conf"

# 5. The daemons (-c: a clean controller state, no jobs from an earlier cluster).
/usr/sbin/slurmctld -c >"$STATE/slurmctld.out" 2>&1 \
    || unavailable "slurmctld did not start: $(tail -2 "$LOG_DIR/slurmctld.log" 2>/dev/null)"
/usr/sbin/slurmd >"$STATE/slurmd.out" 2>&1 \
    || unavailable "slurmd did not start: $(tail -2 "$LOG_DIR/slurmd.log" 2>/dev/null)"

for i in $(seq 60); do
    cluster_ready && break
    # A node that was down in an earlier life of the controller comes back here.
    [ "$i" = 10 ] && scontrol update nodename="$HOST" state=resume >/dev/null 2>&1
    sleep 0.5
done
cluster_ready || unavailable "node $HOST did not become idle: $(sinfo -N -o '%N %t %E' 2>&1 | tail -1)"

# 6. A real job, end to end.
OUT=$(timeout 60 srun -N1 -n1 --time=1 hostname 2>&1) \
    || unavailable "srun hostname failed: $OUT"
rm -f "$STATE/unavailable"
say "SLURM up: node $HOST ($CPUS CPUs, ${MEM} MB, DefMemPerCPU=$DEF_MEM), srun hostname -> $OUT"
sinfo
exit 0
