#!/usr/bin/env bash
# Runs THERE: the phases in order, each in its own process session (no engine process outlives
# its phase), until a deadline. Results: /root/ew/results/<phase>.json, log /root/ew/results/run.log
#   bash bench/gpu/run_all.sh DEADLINE_EPOCH phase1[:MIN_S] phase2[:MIN_S] ...
# (a phase starts only if at least MIN_S seconds remain before the deadline)
# A file /root/ew/STOP makes it start no further phase.
set -uo pipefail
cd "$(dirname "$0")/../.."
# Freeze the code for the whole run: each later device call re-syncs the repo copy, and the
# phases import earwitness's modules when they start.
SRC=/root/ew/src
rm -rf "$SRC" && mkdir -p "$SRC" && tar --exclude=./.device --exclude=./.git --exclude=./.venv --exclude=./.cache -cf - . | tar -C "$SRC" -xf -
cd "$SRC"
source bench/gpu/env.sh
RES=/root/ew/results
mkdir -p "$RES"
deadline=$1; shift
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'triton', triton.__version__)"
} > "$RES/gpu.txt" 2>&1
for spec in "$@"; do
  phase=${spec%%:*}; min_s=0; [ "$spec" != "$phase" ] && min_s=${spec#*:}
  now=$(date +%s)
  if [ -e /root/ew/STOP ] || [ $((now + min_s)) -ge "$deadline" ]; then
    echo "[$(date +%T)] skip $phase (stop/deadline)" >> "$RES/run.log"; continue
  fi
  echo "[$(date +%T)] === phase $phase" >> "$RES/run.log"
  setsid python3 bench/gpu/bench.py --phase "$phase" --model /root/ew/model --out "$RES" \
      --deadline-epoch "$deadline" >> "$RES/$phase.log" 2>&1 &
  pid=$!
  wait $pid; rc=$?
  echo "[$(date +%T)] phase $phase rc=$rc" >> "$RES/run.log"
  kill -9 -- -"$pid" 2>/dev/null   # anything its session left behind (engine-core processes)
  sleep 3
  nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$RES/run.log" 2>&1
done
echo "[$(date +%T)] DONE" >> "$RES/run.log"
