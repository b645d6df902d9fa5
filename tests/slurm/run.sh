#!/usr/bin/env bash
# The suite as a real Slurm job array on this machine (issue 15), end to end:
#   1. installs slurm-wlm and munge with apt-get when missing (needs root or sudo),
#   2. writes a one-node slurm.conf (NodeName=localhost, CPUs from nproc, RealMemory from
#      free) into a temp dir and starts munged, slurmctld and slurmd on localhost,
#   3. `clsbench plan tests/slurm/suite.toml --slurm DIR`, submits the array held, cancels
#      one task before it starts, releases the rest, waits; a merge must be partial (exit 5)
#      and name the cancelled job; the job is resubmitted alone,
#   4. with the model mirror ($CLSBENCH_MODEL_DIR/all-MiniLM-L6-v2): a tiny transformer job
#      is scancelled mid-training (after its first epoch checkpoint), resubmitted, and must
#      resume from that epoch; without the mirror this part says it is skipped,
#   5. requeues a finished task (it must reuse its result, not duplicate it), merges, and
#      asserts the merged run equals a single-process `clsbench run` of the same suite:
#      identical predictions files, and identical `splits` in results.json (metrics, per-class,
#      tiers, bootstrap intervals, McNemar); timestamps, hardware and wall times are ignored.
# Daemons are stopped and the temp dir removed on every exit path. Usage:
#   tests/slurm/run.sh            (make test-slurm; CLSBENCH=path/to/clsbench to skip the build)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
T0=$(date +%s)
log() { echo "slurm-test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge (apt-get)"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q slurm-wlm munge >/dev/null
fi
command -v python3 >/dev/null || fail "python3 is needed to compare results.json files"

if [ -z "${CLSBENCH:-}" ]; then
  cargo build -q -p clsbench --bin clsbench
  CLSBENCH=$REPO/target/debug/clsbench
fi

W=$(mktemp -d /tmp/clsbench-slurm.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
  local rc=$?
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
    scancel --quiet --user="$(id -un)" 2>/dev/null
  fi
  for f in "$W/slurmd.pid" "$W/slurmctld.pid" "$W/munged.pid"; do
    if [ -s "$f" ]; then
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null && for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
    fi
  done
  if [ "$rc" -ne 0 ] && [ -d "$W" ]; then
    for f in "$W"/slurmctld.log "$W"/slurmd.log "$W"/shared/*/logs/*; do
      [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  rm -rf "$W"
  log "$([ "$rc" -eq 0 ] && echo PASS || echo "FAILED (exit $rc)") in $(( $(date +%s) - T0 )) s"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# munge: its own key and socket in $W, so a system munged (if any) is left alone.
mkdir -p "$W/munge"
dd if=/dev/urandom bs=1 count=1024 of="$W/munge/munge.key" 2>/dev/null
chmod 700 "$W/munge"; chmod 400 "$W/munge/munge.key"
MUNGE_SOCKET=$W/munge/munge.socket
if [ "$(id -u)" -eq 0 ]; then chown -R munge:munge "$W/munge" 2>/dev/null || true; fi
MUNGE_USER=$(stat -c %U "$W/munge/munge.key")
if [ "$(id -u)" -eq 0 ] && [ "$MUNGE_USER" = munge ]; then MUNGE_RUN=(runuser -u munge --); else MUNGE_RUN=(); fi
"${MUNGE_RUN[@]}" munged --key-file="$W/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$W/munge/munged.pid" --log-file="$W/munge/munged.log" --seed-file="$W/munge/munge.seed" --force
for _ in $(seq 50); do [ -s "$W/munge/munged.pid" ] && break; sleep 0.1; done
cp "$W/munge/munged.pid" "$W/munged.pid"

CPUS=$(nproc)
MEM_MB=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
PORT=$(( 17000 + RANDOM % 2000 ))
SLURM_USER=$(id -un)
mkdir -p "$W/state" "$W/spool" "$W/shared"
cat > "$W/slurm.conf" <<EOF
ClusterName=clsbench-test
SlurmctldHost=localhost
SlurmUser=$SLURM_USER
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
NodeName=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$W/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.2
done
[ "$state" = idle ] || fail "the node did not come up (sinfo state: ${state:-none})"
log "slurmctld + slurmd up (localhost, $CPUS CPUs, ${MEM_MB} MB) after $(( $(date +%s) - T0 )) s"

# The suite; with the model mirror, a tiny transformer that trains for 2 epochs.
SUITE=$W/suite.toml
sed "s#\.\./\.\./fixtures#$REPO/fixtures#" tests/slurm/suite.toml > "$SUITE"
TRANSFORMER=""
if [ -f "${CLSBENCH_MODEL_DIR:-/nonexistent}/all-MiniLM-L6-v2/config.json" ]; then
  TRANSFORMER=minilm
  cat >> "$SUITE" <<'EOF'

[[models]]
id = "minilm"
kind = "encoder"
checkpoint = "sentence-transformers/all-MiniLM-L6-v2"
method = "full"
pooling = "mean"
learning_rate = 5e-5
epochs = 2
batch_size = 16
eval_batch_size = 32
max_length = 32
max_train_examples = 48
EOF
else
  log "SKIPPED the transformer job: no model mirror at \$CLSBENCH_MODEL_DIR/all-MiniLM-L6-v2 (tools/fetch-models.sh makes one)"
fi

# The reference: one process, the whole suite.
"$CLSBENCH" run "$SUITE" --output-dir "$W/single" --run-id one >/dev/null 2>"$W/single.err" || { cat "$W/single.err" >&2; fail "single run"; }
log "single-process run done after $(( $(date +%s) - T0 )) s"

"$CLSBENCH" plan "$SUITE" --slurm "$W/shared" --max-parallel 2 --time 00:10:00 --gpus-per-job 0 >/dev/null
SCRIPT=$W/shared/slurm-tiny/array.sbatch
JOBS=$W/shared/slurm-tiny/jobs
grep -q -- '--array=0-' "$SCRIPT" || fail "no --array line in $SCRIPT"
N=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['n_jobs'])" "$W/shared/slurm-tiny/plan.json")

wait_for() {  # wait_for JOBID [SECONDS]: until no task of the job is pending or running
  local deadline=$(( $(date +%s) + ${2:-300} ))
  while squeue -h -j "$1" -t PD,R,CG,CF 2>/dev/null | grep -q .; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "job $1 still queued after ${2:-300} s"
    sleep 0.5
  done
}

# Held submission; task 1 cancelled before it starts; the rest released.
ARRAY_T0=$(date +%s)
JOB=$(sbatch --parsable --hold "$SCRIPT")
scancel "${JOB}_1"
scontrol release "$JOB"
if [ -n "$TRANSFORMER" ]; then
  # The transformer is the last job: cancel it once its first epoch is checkpointed.
  T_IDX=$((N - 1))
  deadline=$(( $(date +%s) + 300 ))
  # state.json is written last, once an epoch's checkpoint is complete.
  until [ -f "$JOBS/$TRANSFORMER/models/$TRANSFORMER/resume/state.json" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "no epoch checkpoint of $TRANSFORMER after 300 s"
    sleep 0.5
  done
  scancel "${JOB}_${T_IDX}"
  log "scancelled task $T_IDX ($TRANSFORMER) mid-training, after its first epoch checkpoint"
fi
wait_for "$JOB"
[ ! -f "$JOBS/tfidf-lr-unigram/job.json" ] || fail "the cancelled task 1 wrote a job record"
[ -z "$TRANSFORMER" ] || [ ! -f "$JOBS/$TRANSFORMER/job.json" ] || fail "the cancelled transformer task finished anyway"

set +e
"$CLSBENCH" merge "$W/shared" >/dev/null 2>"$W/partial.err"
rc=$?
set -e
[ "$rc" -eq 5 ] || { cat "$W/partial.err" >&2; fail "a merge with a cancelled job exited $rc, expected 5 (partial)"; }
grep -q "missing: 1 (tfidf-lr-unigram)" "$W/partial.err" || { cat "$W/partial.err" >&2; fail "the partial merge did not name job 1"; }
log "merge with cancelled jobs: partial (exit 5), names them"

# Resubmit what was cancelled; requeue a finished task (it must reuse its result).
RESUBMIT=1
[ -z "$TRANSFORMER" ] || RESUBMIT="1,$T_IDX"
JOB2=$(sbatch --parsable --array="$RESUBMIT" "$SCRIPT")
JOB3=$(sbatch --parsable --array=0 "$SCRIPT")
wait_for "$JOB2" 600
wait_for "$JOB3"
ARRAY_S=$(( $(date +%s) - ARRAY_T0 ))
grep -q "reusing" "$W/shared/slurm-tiny/logs/${JOB3}_0.err" || fail "the re-run of task 0 did not reuse its finished result"
python3 - "$JOBS" "$TRANSFORMER" <<'EOF' || fail "job records"
import json, os, sys
jobs, transformer = sys.argv[1], sys.argv[2]
for d in sorted(os.listdir(jobs)):
    r = json.load(open(os.path.join(jobs, d, "job.json")))
    assert r["status"] == "ok", (d, r["status"], r.get("error"))
    print(f"slurm-test: job {r['index']} {d}: {r['wall_s']:.1f} s on {r['host']} (array task {r['slurm'].get('SLURM_ARRAY_TASK_ID')}, restart {r['slurm'].get('SLURM_RESTART_COUNT', '0')})", file=sys.stderr)
if transformer:
    report = json.load(open(os.path.join(jobs, transformer, "models", transformer, "model.json")))["train_report"]
    assert report.get("resumed_after_epoch") == 1, f"the resubmitted transformer did not resume after epoch 1: {report.get('resumed_after_epoch')}"
    print(f"slurm-test: {transformer} resumed after epoch 1", file=sys.stderr)
EOF

"$CLSBENCH" merge "$W/shared" >/dev/null 2>"$W/merge.err" || { cat "$W/merge.err" >&2; fail "merge"; }
python3 - "$W/single/slurm-tiny/one" "$W/shared/slurm-tiny/merged" <<'EOF' || fail "the merged run differs from the single-process run"
import json, os, sys
single, merged = sys.argv[1], sys.argv[2]
a = json.load(open(os.path.join(single, "results.json")))
b = json.load(open(os.path.join(merged, "results.json")))
assert [m["id"] for m in a["models"]] == [m["id"] for m in b["models"]], "models differ"
for ma, mb in zip(a["models"], b["models"]):
    for k in ("status", "cache_key", "predictions"):
        assert ma[k] == mb[k], (ma["id"], k)
assert a["dataset"]["inputs"] == b["dataset"]["inputs"] or [i["sha256"] for i in a["dataset"]["inputs"]] == [i["sha256"] for i in b["dataset"]["inputs"]]
assert a["splits"] == b["splits"], "splits (metrics, bootstrap intervals, McNemar) differ"
for m in a["models"]:
    pa = open(os.path.join(single, "models", m["id"], "predictions.csv"), "rb").read()
    pb = open(os.path.join(merged, "models", m["id"], "predictions.csv"), "rb").read()
    assert pa == pb, f"predictions of {m['id']} differ"
    lines = pb.decode().splitlines()[1:]
    assert len(lines) == len(set(lines)), f"duplicated predictions of {m['id']}"
man = json.load(open(os.path.join(merged, "manifest.json")))
assert man["jobs"]["partial"] is False
assert all(j["state"] == "finished" and j["record"]["hardware"] and j["record"]["wall_s"] >= 0 for j in man["jobs"]["jobs"])
n = len(a["models"])
print(f"slurm-test: merged == single: {n} models, predictions identical, splits identical ({len(a['splits'])} splits)", file=sys.stderr)
EOF
log "array wall time on this machine (submit -> last task done, including the resubmissions): ${ARRAY_S} s"
