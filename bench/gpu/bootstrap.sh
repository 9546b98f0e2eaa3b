#!/usr/bin/env bash
# Runs THERE (the borrowed GPU machine, no network), from the repo copy's root.
#   bash bench/gpu/bootstrap.sh part1   # run 1: carry .device/p1 -> keep piece 1, install wheels,
#                                       #        write the full-size dummy model
#   bash bench/gpu/bootstrap.sh part2   # run 2 (the very next call): carry .device/p2 ->
#                                       #        reassemble, verify sha256, extract vLLM
#   source bench/gpu/env.sh             # then: PYTHONPATH and vLLM's environment
# Everything lives outside the repo copy (/root/ew), which survives between calls while the
# machine stays warm (~30 s idle).
set -euo pipefail
EW=/root/ew
mkdir -p "$EW"
case "${1:?part1|part2}" in
  part1)
    cp .device/p1/vllm.tar.xz.part1 .device/p1/vllm.tar.xz.sha256 "$EW"/
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /root/ew/site .device/p1/wheels/*.whl
    export PYTHONPATH=/root/ew/site:$PWD
    python3 -c "from pathlib import Path; from stream.testmodel import write_test_model; \
write_test_model(Path('$EW/model'), real_dims=True)"
    ls -la "$EW" "$EW/model"
    ;;
  part2)
    cp .device/p2/vllm.tar.xz.part2 "$EW"/
    cat "$EW/vllm.tar.xz.part1" "$EW/vllm.tar.xz.part2" > "$EW/vllm.tar.xz"
    echo "$(cat .device/p2/vllm.tar.xz.sha256)  $EW/vllm.tar.xz" | sha256sum -c -
    rm -rf "$EW/vllm" && mkdir -p "$EW/vllm"
    tar -C "$EW/vllm" -xJf "$EW/vllm.tar.xz"
    rm -f "$EW/vllm.tar.xz" "$EW"/vllm.tar.xz.part*
    du -sh "$EW/vllm"
    ;;
esac
