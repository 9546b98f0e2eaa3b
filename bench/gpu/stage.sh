#!/usr/bin/env bash
# Stage what the borrowed GPU machine needs (no network there, <= 64 MiB per run, the tree that
# travels included). Runs HERE (a machine with PyPI and a JDK). Everything lands in ROOT, a
# git-ignored .device/ of the checkout that the device tool sends: nothing staged is committed.
#
#   ROOT=/work/main/.device bash bench/gpu/stage.sh       # payload pieces + the code copy
#   ROOT=/work/main/.device bash bench/gpu/stage.sh src   # only the code copy (after a commit)
#
# Payload (cached between calls; delete ROOT/cache to rebuild):
#   vllm.tar.xz   vLLM 0.26.0 (pins torch 2.11.0, the image's) stripped of what the Hopper path
#                 does not use (../shared/notes/gpu-machine.md): FA2 (_vllm_fa2_C, an optional
#                 import; FA3 runs on sm90), vllm-rs, third_party/deep_gemm, third_party/fmha_sm100;
#                 `from __future__ import annotations` in the two structured-output backends, so
#                 xgrammar/llguidance need not travel
#   wheels.tar    cp312 wheels missing from the image: vLLM's small deps + the project's own
#                 (confluent-kafka, pydantic-settings, orjson, soxr); every wheel whose name is in
#                 bench/gpu/image-packages.txt is dropped (numpy, httpx, psutil, pyyaml ... are there)
#   kafka.tar.xz  a Java 17 runtime (jlink, only the modules the broker uses) + the broker jars of
#                 kafka/libs unpacked (solid xz packs classes ~3x better than jars), without the
#                 native libraries of other platforms; bootstrap.sh rebuilds the jars there
# The three are tarred into one bundle and split into as many pieces as the size needs: piece
# size = 64 MiB - the sent tree - the code copy - HEADROOM_MIB. Each piece travels in its own run
# (`carry: [".device/src", ".device/pN"]`); bootstrap.sh reassembles them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)   # the worktree whose code travels
ROOT=${ROOT:-$HERE/.device}
SEND=${SEND:-$(dirname "$ROOT")}            # the checkout the device tool sends
LIMIT=$((64 * 1024 * 1024))
HEADROOM=$((${HEADROOM_MIB:-3} * 1024 * 1024))
CACHE=$ROOT/cache
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_31_x86_64
      --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 --platform manylinux1_x86_64
      --platform manylinux2010_x86_64 --platform linux_x86_64)
mkdir -p "$CACHE"

tree_bytes() {  # what the device tool sends besides carried paths
  git -C "$SEND" ls-files -z -co --exclude-standard | (cd "$SEND" && du -cb --files0-from=- 2>/dev/null) | tail -1 | cut -f1
}

stage_src() {  # the committed code of this worktree (not the sent checkout, which moves)
  rm -rf "$ROOT/src" && mkdir -p "$ROOT/src"
  git -C "$HERE" archive HEAD earwitness stream windowing sinks scripts examples pyproject.toml \
    kafka/pom.xml bench/gpu ':(exclude)bench/gpu/results' | tar -x -C "$ROOT/src"
  git -C "$HERE" rev-parse HEAD > "$ROOT/src/COMMIT"
  [ -z "$(git -C "$HERE" status --porcelain -- earwitness stream windowing bench/gpu examples scripts)" ] \
    || echo "stage: WARNING: uncommitted changes are NOT in the code copy" >&2
  echo "stage: code copy $(cat "$ROOT/src/COMMIT" | cut -c1-10), $(du -sb "$ROOT/src" | cut -f1) bytes"
}

stage_vllm() {
  [ -s "$CACHE/vllm.tar.xz" ] && return
  ls "$ROOT"/dl/vllm-0.26.0-*.whl >/dev/null 2>&1 || \
    python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$ROOT/dl" vllm==0.26.0
  rm -rf "$ROOT/tree" && mkdir -p "$ROOT/tree"
  python3 - "$ROOT/dl" "$ROOT/tree" <<'PY'
import glob, sys, zipfile
zipfile.ZipFile(glob.glob(f"{sys.argv[1]}/vllm-0.26.0-*.whl")[0]).extractall(sys.argv[2])
PY
  ( cd "$ROOT/tree"
    rm -rf vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so vllm/vllm-rs vllm/third_party/deep_gemm \
           vllm/third_party/fmha_sm100
    for f in vllm/v1/structured_output/backend_guidance.py vllm/v1/structured_output/backend_xgrammar.py; do
      grep -q '^from __future__ import annotations' "$f" || sed -i '1i from __future__ import annotations' "$f"
    done
    find . -name __pycache__ -prune -exec rm -rf {} +
  )
  tar -C "$ROOT/tree" -cf - vllm vllm-0.26.0.dist-info | xz -9 -T2 > "$CACHE/vllm.tar.xz.tmp"
  mv "$CACHE/vllm.tar.xz.tmp" "$CACHE/vllm.tar.xz"
  rm -rf "$ROOT/tree"
}

stage_wheels() {
  local dir=$ROOT/wheels
  rm -rf "$dir" && mkdir -p "$dir"
  # vLLM 0.26's small deps (found with `pip install --dry-run --report`), then the project's
  # own, pinned as in requirements/ci.lock. compressed-tensors without deps (it pulls torch).
  python3 -m pip download -q "${PLAT[@]}" -d "$dir" \
    'pydantic>=2.12' 'openai>=2.0.0,<3' 'fastapi>=0.133,<0.137' 'starlette>=1.0.1' \
    'prometheus-fastapi-instrumentator>=8.0.0' watchfiles 'pyzmq>=25' msgspec blake3 cachetools \
    cbor2 setproctitle pybase64 ijson partial-json-parser python-json-logger depyf==0.20.0 \
    lark==1.2.2 loguru 'openai-harmony>=0.0.3' sniffio \
    confluent-kafka==2.16.1 soundfile==0.13.1 pydantic-settings==2.16.3 python-dotenv==1.2.4 orjson==3.13.0 soxr==1.1.0
  python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$dir" compressed-tensors==0.17.0
  local name
  for whl in "$dir"/*.whl; do   # drop what the image has: one version of each there
    name=$(basename "$whl" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')
    if grep -qx "$name" <(grep -v '^#' "$HERE/bench/gpu/image-packages.txt" | tr 'A-Z_.' 'a-z--'); then
      rm -f "$whl"
    fi
  done
  tar -C "$ROOT" -cf "$CACHE/wheels.tar" wheels
  echo "stage: $(ls "$dir" | wc -l) wheels, $(du -sb "$dir" | cut -f1) bytes: $(ls "$dir" | cut -d- -f1 | tr '\n' ' ')"
}

stage_kafka() {
  [ -s "$CACHE/kafka.tar.xz" ] && return
  local work=$ROOT/kafka-build libs
  libs=$(readlink -f "$HERE/kafka/libs")
  ls "$libs"/kafka_2.13-*.jar >/dev/null
  rm -rf "$work" && mkdir -p "$work/jars"
  # The broker's modules (java.desktop for java.beans; the tools left out); checked by a broker start here.
  jlink --add-modules java.base,java.compiler,java.desktop,java.instrument,java.logging,java.management,java.naming,java.net.http,java.rmi,java.scripting,java.security.jgss,java.security.sasl,java.sql,java.transaction.xa,java.xml,jdk.crypto.ec,jdk.management,jdk.unsupported,jdk.zipfs \
    --strip-debug --no-header-files --no-man-pages --compress=0 --output "$work/jre"
  for jar in "$libs"/*.jar; do
    mkdir -p "$work/jars/$(basename "$jar" .jar)"
    (cd "$work/jars/$(basename "$jar" .jar)" && unzip -q "$jar")
  done
  # native libraries of other platforms (the GPU machine is x86-64 Linux)
  rm -rf "$work"/jars/zstd-jni-*/{darwin,aix,freebsd,win}
  find "$work"/jars/zstd-jni-*/linux -mindepth 1 -maxdepth 1 ! -name amd64 -exec rm -rf {} +
  find "$work"/jars/snappy-java-*/org/xerial/snappy/native -mindepth 1 -maxdepth 1 -type d \
    ! -name Linux -exec rm -rf {} +
  find "$work"/jars/snappy-java-*/org/xerial/snappy/native/Linux -mindepth 1 -maxdepth 1 \
    ! -name x86_64 -exec rm -rf {} +
  tar -C "$work" -cf - jre jars | xz -9 -T2 > "$CACHE/kafka.tar.xz.tmp"
  mv "$CACHE/kafka.tar.xz.tmp" "$CACHE/kafka.tar.xz"
  rm -rf "$work"
}

split_pieces() {
  local tree src budget n i sha
  tree=$(tree_bytes)
  src=$(du -sb "$ROOT/src" | cut -f1)
  budget=$((LIMIT - tree - src - HEADROOM))
  tar -C "$CACHE" -cf "$CACHE/bundle.tar" wheels.tar vllm.tar.xz kafka.tar.xz
  sha=$(sha256sum "$CACHE/bundle.tar" | cut -d' ' -f1)
  rm -rf "$ROOT"/p[0-9]*
  split -b "$budget" -d -a 2 "$CACHE/bundle.tar" "$CACHE/bundle.part."
  n=$(ls "$CACHE"/bundle.part.* | wc -l)
  i=1
  for part in "$CACHE"/bundle.part.*; do
    mkdir -p "$ROOT/p$i"
    mv "$part" "$ROOT/p$i/"
    printf 'sha256=%s\npieces=%s\n' "$sha" "$n" > "$ROOT/p$i/MANIFEST"
    i=$((i + 1))
  done
  rm -f "$CACHE/bundle.tar"
  echo "stage: sent tree $tree B, code copy $src B, headroom $HEADROOM B -> piece budget $budget B"
  echo "stage: $n pieces (one run each, in order; carry .device/src + .device/pN)"
  local fail=0 size
  for dir in "$ROOT"/p[0-9]*; do
    size=$(du -sb "$dir" | cut -f1)
    printf 'stage: %-4s %10d B + tree + code = %10d of %d\n' "$(basename "$dir")" "$size" \
      $((size + tree + src)) "$LIMIT"
    [ $((size + tree + src)) -le "$LIMIT" ] || fail=1
  done
  [ "$fail" = 0 ] || { echo "stage: a piece is over the 64 MiB a run carries" >&2; exit 1; }
}

stage_src
[ "${1:-all}" = src ] && exit 0
stage_vllm
stage_wheels
stage_kafka
ls -l "$CACHE"/*.tar* | awk '{print "stage:", $5, $9}'
split_pieces
