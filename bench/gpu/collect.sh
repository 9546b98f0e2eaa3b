#!/usr/bin/env bash
# Runs THERE: wait for run_all.sh (up to $1 s), then copy results and log tails into $OUT.
wait_s=${1:-500}
EW=${EW:-/root/ew}
end=$(( $(date +%s) + wait_s ))
RES=$EW/results
while [ "$(date +%s)" -lt "$end" ]; do
  grep -q DONE "$RES/run.log" 2>/dev/null && break
  sleep 5
done
cd "$RES" && tar -czf "$OUT/results.tgz" --exclude='*.tgz' --exclude='kafka-*' . 2>/dev/null
cat "$RES/run.log" 2>/dev/null
for f in "$RES"/*.log; do [ "$f" = "$RES/run.log" ] || { echo "== $f"; grep -v "^\s*$" "$f" | grep -E "^\[|Error|error|Traceback|rc=" | grep -v "vllm\|INFO" | tail -n 25; }; done
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
