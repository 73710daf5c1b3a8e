#!/usr/bin/env bash
# start-local-slurm.sh -- a real single-node SLURM cluster on this machine, for the
# `slurm` tests and for trying `hydra/launcher=slurm` without a cluster. Runs as root,
# needs neither systemd nor cgroups (so it works in containers and CI runners).
#
#   eval "$(scripts/start-local-slurm.sh)"    # installs, starts, exports SLURM_CONF
#   scripts/stop-local-slurm.sh               # stops it again
#
# Idempotent:
#   * if the cluster under $LOCAL_SLURM_ROOT is already up and its node is usable -> no-op
#   * otherwise: stop leftovers (by pid file), wipe state, rewrite configs, start
#     munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd, wait until the node is idle.
# Installs the Debian packages it needs (slurm-wlm daemons, munge, mariadb) when missing.
# Only the `export SLURM_CONF=...` line goes to stdout; progress goes to stderr.
#
# Partitions: `debug` (default) and `high`; a job in `high` preempts (requeues) jobs in
# `debug`, which first get their --signal (submitit: USR2) and GraceTime=30 s to checkpoint.
#
# Environment knobs (all optional):
#   LOCAL_SLURM_ROOT=/tmp/scaling-lab-slurm  conf, state, logs, pids, sockets (<= 60 chars:
#                               unix socket paths are limited to 108)
#   LOCAL_SLURM_ACCOUNTING=1    1: MariaDB + slurmdbd so that `sacct` works. Keep it on:
#                               submitit reads job states with sacct; without it every job is
#                               UNKNOWN and waiting on a cancelled job never ends.
#   LOCAL_SLURM_INSTALL=1       apt-get install missing Debian packages
#   LOCAL_SLURM_CPUS=$(nproc)   CPUs advertised for the node (may exceed nproc: SlurmdParameters=config_overrides)
#   LOCAL_SLURM_MEM_MB=<90% of MemTotal>
#   LOCAL_SLURM_CTLD_PORT=6817 LOCAL_SLURM_SLURMD_PORT=6818 LOCAL_SLURM_DBD_PORT=6819 LOCAL_SLURM_MYSQL_PORT=3306
#   LOCAL_SLURM_WAIT_S=60       max seconds to wait for the node to become idle
#   LOCAL_SLURM_LINK_ETC=0      1: also symlink /etc/slurm/slurm.conf -> our slurm.conf (so no SLURM_CONF needed)
set -euo pipefail

ROOT=${LOCAL_SLURM_ROOT:-/tmp/scaling-lab-slurm}
ACCOUNTING=${LOCAL_SLURM_ACCOUNTING:-1}
INSTALL=${LOCAL_SLURM_INSTALL:-1}
CPUS=${LOCAL_SLURM_CPUS:-$(nproc)}
MEM_MB=${LOCAL_SLURM_MEM_MB:-$(awk '/MemTotal/{print int($2/1024*0.9)}' /proc/meminfo)}
CTLD_PORT=${LOCAL_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${LOCAL_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${LOCAL_SLURM_DBD_PORT:-6819}
MYSQL_PORT=${LOCAL_SLURM_MYSQL_PORT:-3306}
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}
LINK_ETC=${LOCAL_SLURM_LINK_ETC:-0}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export SLURM_CONF=$ROOT/etc/slurm.conf
T0=$(date +%s%N)
log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[local-slurm %3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root, munged/slurmd as root)"
[ ${#ROOT} -le 60 ] || die "LOCAL_SLURM_ROOT too long (unix socket paths are limited to 108 chars)"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
link_etc() {
  [ "$LINK_ETC" = 1 ] || return 0
  mkdir -p /etc/slurm; ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
  [ "$ACCOUNTING" = 1 ] && ln -sfn "$ROOT/etc/slurmdbd.conf" /etc/slurm/slurmdbd.conf
  return 0
}
# alive = pid file exists, process exists and is not a zombie (pid 1 may reap daemons late)
pid_alive() { local f=$1 p; [ -s "$f" ] || return 1; p=$(cat "$f"); kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; }
node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -1; }

# ---------------------------------------------------------------- 0. packages
need_pkgs=()
for b in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge; do
  command -v "${b%%:*}" >/dev/null 2>&1 || need_pkgs+=("${b##*:}")
done
if [ "$ACCOUNTING" = 1 ]; then
  command -v slurmdbd >/dev/null 2>&1 || need_pkgs+=(slurmdbd)
  command -v mariadbd >/dev/null 2>&1 || need_pkgs+=(mariadb-server)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$INSTALL" = 1 ] || die "missing packages: ${need_pkgs[*]} (set LOCAL_SLURM_INSTALL=1)"
  log "installing ${need_pkgs[*]}"
  # keep maintainer scripts from trying to start services (no systemd/init here)
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  export DEBIAN_FRONTEND=noninteractive
  rc=0
  if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then apt-get update -qq || true; fi
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null; } || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get failed (rc=$rc)"
  log "packages installed"
fi

# ---------------------------------------------------------------- 1. already up?
KNOBS="acct=$ACCOUNTING cpus=$CPUS mem=$MEM_MB ports=$CTLD_PORT,$SLURMD_PORT,$DBD_PORT,$MYSQL_PORT"
if [ "$(cat "$ROOT/etc/knobs" 2>/dev/null)" = "$KNOBS" ] && pid_alive "$ROOT/run/slurmctld.pid" && pid_alive "$ROOT/run/slurmd.pid" && pid_alive "$ROOT/run/munged.pid" \
   && { [ "$ACCOUNTING" != 1 ] || { pid_alive "$ROOT/run/slurmdbd.pid" && pid_alive "$ROOT/run/mariadbd.pid"; }; }; then
  case "$(node_state)" in
    idle|mixed|allocated|completing)
      log "already running (node $(node_state)); nothing to do"
      link_etc
      echo "export SLURM_CONF=$SLURM_CONF"
      exit 0;;
  esac
fi
# partial / stale -> clean restart
if [ -d "$ROOT/run" ]; then
  log "stale, partial or differently configured cluster in $ROOT -> stopping it first"
  LOCAL_SLURM_ROOT=$ROOT "$HERE/stop-local-slurm.sh" >&2 || true
fi
ports="$CTLD_PORT $SLURMD_PORT"; [ "$ACCOUNTING" = 1 ] && ports="$ports $DBD_PORT $MYSQL_PORT"
for p in $ports; do port_busy "$p" && die "port $p already in use (another slurm/mysql?); override LOCAL_SLURM_*_PORT"; done
rm -rf "$ROOT/state" "$ROOT/run" "$ROOT/log" "$ROOT/etc" "$ROOT/munge/run"
mkdir -p "$ROOT"/{etc,log,run,state/ctld,state/slurmd,munge/run}
chmod 755 "$ROOT" "$ROOT/munge" "$ROOT/munge/run"  # munged insists the socket dir is o+x

# ---------------------------------------------------------------- 2. munge
MUNGE_SOCK=$ROOT/munge/run/munge.socket
[ -s "$ROOT/munge/munge.key" ] || mungekey --create --keyfile="$ROOT/munge/munge.key" --bits=1024
chmod 600 "$ROOT/munge/munge.key"
munged --key-file="$ROOT/munge/munge.key" --socket="$MUNGE_SOCK" --pid-file="$ROOT/run/munged.pid" \
       --log-file="$ROOT/log/munged.log" --seed-file="$ROOT/munge/munged.seed" \
  || die "munged failed: $(tail -3 "$ROOT/log/munged.log")"
for _ in $(seq 50); do munge -n -S "$MUNGE_SOCK" 2>/dev/null | unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK" >/dev/null || die "munge round-trip failed"
log "munged up (pid $(cat "$ROOT/run/munged.pid"))"

# ---------------------------------------------------------------- 3. accounting (optional)
if [ "$ACCOUNTING" = 1 ]; then
  DB=$ROOT/mysql
  if [ ! -d "$DB/data/mysql" ]; then
    rm -rf "$DB"; mkdir -p "$DB"
    mariadb-install-db --no-defaults --user=root --datadir="$DB/data" --auth-root-authentication-method=socket \
      --skip-test-db > "$ROOT/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed, see $ROOT/log/mariadb-install.log"
  fi
  # mariadbd does not daemonize by itself: setsid + nohup, it writes its own pid file
  setsid nohup mariadbd --no-defaults --user=root --datadir="$DB/data" --socket="$DB/mysqld.sock" \
      --pid-file="$ROOT/run/mariadbd.pid" --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
      --log-error="$ROOT/log/mariadb.log" --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 \
      </dev/null >/dev/null 2>&1 &
  for _ in $(seq 300); do mariadb-admin --no-defaults --socket="$DB/mysqld.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
  mariadb-admin --no-defaults --socket="$DB/mysqld.sock" ping >/dev/null 2>&1 || die "mariadbd not up, see $ROOT/log/mariadb.log"
  mariadb --no-defaults --socket="$DB/mysqld.sock" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    DROP DATABASE IF EXISTS slurm_acct_db; FLUSH PRIVILEGES;" || die "mariadb user setup failed"
  log "mariadbd up (pid $(cat "$ROOT/run/mariadbd.pid"))"
  cat > "$ROOT/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$ROOT/run/slurmdbd.pid
LogFile=$ROOT/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$ROOT/etc/slurmdbd.conf"   # slurmdbd refuses a world-readable conf with a password
  ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# DBD connections ignore AuthInfo=socket=...; the munge socket for them is AccountingStoragePass:
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
  ACCT_CONF="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# ---------------------------------------------------------------- 4. slurm.conf
echo "$KNOBS" > "$ROOT/etc/knobs"
# A wiped cluster would number its jobs from 1 again, and submitit would then find the
# result files of an older job with the same id in a sweep's .submitit folder and take
# them for the new job's. Starting from the clock (one id per second since 2025, below
# Slurm's MaxJobId of 67043328) keeps ids of successive starts apart.
FIRST_JOB_ID=$(( ($(date +%s) - 1735689600) % 60000000 + 1 ))
cat > "$SLURM_CONF" <<EOF
# generated by scripts/start-local-slurm.sh -- single node, no systemd, no cgroups
ClusterName=localcluster
FirstJobId=$FIRST_JOB_ID
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire (default 120 s, min 5) is also the delay before a requeued job may start again
AuthInfo=socket=$MUNGE_SOCK,cred_expire=5
StateSaveLocation=$ROOT/state/ctld
SlurmdSpoolDir=$ROOT/state/slurmd
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no systemd:
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
MpiDefault=none
SwitchType=switch/none
$ACCT_CONF
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# default batch_sched_delay=3 s and sched_interval=60 s make tests slow:
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
ReturnToService=2
MailProg=/bin/true
KillWait=5
MinJobAge=300
InactiveLimit=0
Waittime=0
# real preemption: a job in partition 'high' preempts (requeues) jobs in 'debug';
# with GraceTime the preempted job first gets its --signal (submitit: USR2) -> checkpoint + requeue
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=30
PartitionName=high  Nodes=localhost Default=NO  MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
link_etc

# ---------------------------------------------------------------- 5. daemons
if [ "$ACCOUNTING" = 1 ]; then
  slurmdbd || die "slurmdbd failed: $(tail -5 "$ROOT/log/slurmdbd.log")"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$DBD_PORT") 2>/dev/null && break; sleep 0.1; done
  (exec 3<>/dev/tcp/127.0.0.1/"$DBD_PORT") 2>/dev/null || die "slurmdbd not listening, see $ROOT/log/slurmdbd.log"
  log "slurmdbd up (pid $(cat "$ROOT/run/slurmdbd.pid"))"
fi
slurmctld || die "slurmctld failed: $(tail -5 "$ROOT/log/slurmctld.log")"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
log "slurmctld up (pid $(cat "$ROOT/run/slurmctld.pid"))"
slurmd -N localhost || die "slurmd failed: $(tail -5 "$ROOT/log/slurmd.log")"
log "slurmd started"

deadline=$(( $(date +%s) + WAIT_S ))
until [ "$(node_state)" = idle ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    sinfo -N -l >&2 || true; tail -20 "$ROOT/log/slurmctld.log" "$ROOT/log/slurmd.log" >&2
    die "node not idle after ${WAIT_S}s"
  fi
  sleep 0.2
done
if [ "$ACCOUNTING" = 1 ]; then   # slurmctld registers the cluster in slurmdbd by itself; wait until sacct answers
  for _ in $(seq 100); do sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -q localcluster && break; sleep 0.1; done
  sacct -n -X >/dev/null 2>&1 || die "sacct not working"
fi
log "cluster ready (slurmd pid $(cat "$ROOT/run/slurmd.pid" 2>/dev/null)): $(sinfo -h -o '%P %a %D %T %N' | tr '\n' ';')"
echo "export SLURM_CONF=$SLURM_CONF"
