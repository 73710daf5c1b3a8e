#!/usr/bin/env bash
# stop-local-slurm.sh -- stop the cluster started by scripts/start-local-slurm.sh.
# Kills ONLY the daemons whose pid files live in $LOCAL_SLURM_ROOT/run (after checking
# that the pid still belongs to the expected program), never by name.
# Running jobs are cancelled first (scancel) so that no slurmstepd/job processes are left behind.
#   LOCAL_SLURM_PURGE=1  also delete $LOCAL_SLURM_ROOT afterwards
set -uo pipefail
ROOT=${LOCAL_SLURM_ROOT:-/tmp/scaling-lab-slurm}
PURGE=${LOCAL_SLURM_PURGE:-0}
export SLURM_CONF=$ROOT/etc/slurm.conf
log() { echo "[stop-local-slurm] $*" >&2; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# running = exists and is not a zombie (daemons are re-parented to pid 1, which may reap them late)
running() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# 1. cancel our jobs while slurmctld/slurmd still run, so slurmstepd + job processes go away cleanly
if alive "$ROOT/run/slurmctld.pid" && [ -f "$SLURM_CONF" ]; then
  if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
    log "cancelling jobs: $(squeue -h -o %i | tr '\n' ' ')"
    scancel --full --signal=KILL $(squeue -h -o %i -t R,CG,S 2>/dev/null) 2>/dev/null || true
    scancel $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

stop_pidfile() {  # name pidfile expected-/proc/PID/comm
  local name=$1 f=$2 exe=$3 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if ! running "$pid"; then rm -f "$f"; return 0; fi
  # guard against pid reuse: the process must be the expected binary
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$exe" ]; then
    log "pid $pid in $f is not $exe -- not touching it"; rm -f "$f"; return 0
  fi
  local t0=$(( $(date +%s%N) / 1000000 )); kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 200); do running "$pid" || break; sleep 0.05; done
  if running "$pid"; then log "$name ($pid) ignored SIGTERM for 10 s -> SIGKILL"; kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
  rm -f "$f"
  log "stopped $name (pid $pid) in $(( $(date +%s%N) / 1000000 - t0 )) ms"
}

stop_pidfile slurmd    "$ROOT/run/slurmd.pid"    slurmd
stop_pidfile slurmctld "$ROOT/run/slurmctld.pid" slurmctld
stop_pidfile slurmdbd  "$ROOT/run/slurmdbd.pid"  slurmdbd
stop_pidfile mariadbd  "$ROOT/run/mariadbd.pid"  mariadbd
stop_pidfile munged    "$ROOT/run/munged.pid"    munged

# remove /etc/slurm symlinks made by LOCAL_SLURM_LINK_ETC=1, only if they point into our root
for l in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
  [ -L "$l" ] && case "$(readlink "$l")" in "$ROOT"/*) rm -f "$l"; log "removed symlink $l";; esac
done
if [ "$PURGE" = 1 ]; then rm -rf "$ROOT"; log "removed $ROOT"; fi
exit 0
