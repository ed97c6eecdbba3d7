#!/usr/bin/env bash
# Stop the one-node SLURM cluster that tests/slurm/up.sh started: slurmd, slurmctld
# and munged, each by the pid in its own pid file (nothing else is signalled).
#   bash tests/slurm/down.sh [--quiet]
set -u
QUIET=${1:-}
say() { [ "$QUIET" = --quiet ] || echo "slurm/down.sh: $*"; }

stop_pidfile() { # NAME PIDFILE
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        say "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile munged /run/munge/munged.pid
exit 0
