#!/usr/bin/env bash
# Runs THERE: the phases in order, each in its own process session (no engine process outlives
# its phase), until a deadline. Code: EW/src (bootstrap.sh's copy of this session's commit, not
# the repo copy the device tool re-syncs on every call). Results: EW/results/<phase>.json, log
# EW/results/run.log.
#   bash /root/ew/src/bench/gpu/run_all.sh DEADLINE_EPOCH phase1[:MIN_S] phase2[:MIN_S] ...
# A phase starts only if at least MIN_S seconds remain before the deadline; a file EW/STOP makes
# it start no further phase. tune_moe -> tune_moe.py, e2e_* -> e2e.py, the rest -> bench.py.
set -uo pipefail
EW=${EW:-/root/ew}
cd "$EW/src"
source bench/gpu/env.sh
RES=$EW/results
mkdir -p "$RES"
deadline=$1; shift
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'triton', triton.__version__)"
  echo "code $(cat COMMIT)"
} > "$RES/gpu.txt" 2>&1
for spec in "$@"; do
  phase=${spec%%:*}; min_s=0; [ "$spec" != "$phase" ] && min_s=${spec#*:}
  now=$(date +%s)
  if [ -e "$EW/STOP" ] || [ $((now + min_s)) -ge "$deadline" ]; then
    echo "[$(date +%T)] skip $phase (stop/deadline)" >> "$RES/run.log"; continue
  fi
  echo "[$(date +%T)] === phase $phase" >> "$RES/run.log"
  case $phase in
    tune_moe) cmd=(python3 bench/gpu/tune_moe.py --out "$RES" --budget-s "${TUNE_BUDGET_S:-300}") ;;
    e2e_*) cmd=(python3 bench/gpu/e2e.py --phase "$phase" --model "$EW/model" --out "$RES"
                --deadline-epoch "$deadline") ;;
    *) cmd=(python3 bench/gpu/bench.py --phase "$phase" --model "$EW/model" --out "$RES"
            --deadline-epoch "$deadline") ;;
  esac
  setsid "${cmd[@]}" >> "$RES/$phase.log" 2>&1 &
  pid=$!
  wait $pid; rc=$?
  echo "[$(date +%T)] phase $phase rc=$rc" >> "$RES/run.log"
  kill -9 -- -"$pid" 2>/dev/null   # anything its session left behind (engine-core processes)
  for f in "$RES/$phase".analyzer*.pid; do   # e2e: each analyzer's own session, if it outlived
    [ -f "$f" ] && kill -9 -- -"$(cat "$f")" 2>/dev/null; rm -f "$f"
  done
  sleep 3
  nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$RES/run.log" 2>&1
done
echo "[$(date +%T)] DONE" >> "$RES/run.log"
