#!/usr/bin/env bash
# Stage vLLM 0.26.0 + the small cp312 wheels it needs for the borrowed GPU machine (no network
# there, <= 64 MiB per run). Runs HERE (a machine with PyPI). Everything lands in the git-ignored
# .device/ folder (see .gitignore): nothing staged here may be committed.
#
#   bash bench/gpu/stage.sh            # -> .device/p1/ (part 1 + wheels), .device/p2/ (part 2)
#
# What is dropped from the wheel (the Hopper path does not use it; ../shared/notes/gpu-machine.md):
# FA2 (_vllm_fa2_C, optional import; FA3 is used on sm90), vllm-rs, third_party/deep_gemm,
# third_party/fmha_sm100. Patched: `from __future__ import annotations` in the two
# structured-output backends, so xgrammar/llguidance need not travel.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=.device
DL=$ROOT/dl
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_31_x86_64
      --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 --platform manylinux1_x86_64
      --platform manylinux2010_x86_64 --platform linux_x86_64)
mkdir -p "$DL" "$ROOT/wheels"

# 1. vLLM itself (~304 MB wheel).
[ -f "$DL"/vllm-0.26.0-*.whl ] 2>/dev/null || ls "$DL"/vllm-0.26.0-*.whl >/dev/null 2>&1 || \
  python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$DL" vllm==0.26.0

# 2. Small pure/compiled deps missing from the GPU image (image list: .library device KINDS.md).
#    Resolved with their own (small) deps; compressed-tensors without (it would pull torch).
python3 -m pip download -q "${PLAT[@]}" -d "$ROOT/wheels" \
  'pydantic>=2.12' pydantic-settings python-dotenv 'openai>=2.0.0,<3' 'fastapi>=0.133,<0.137' \
  'starlette>=1.0.1' 'prometheus-fastapi-instrumentator>=8.0.0' watchfiles 'pyzmq>=25' msgspec \
  blake3 cachetools cbor2 setproctitle pybase64 ijson partial-json-parser python-json-logger \
  depyf==0.20.0 lark==1.2.2 loguru 'openai-harmony>=0.0.3' 'typing_extensions>=4.10' sniffio soxr orjson
python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$ROOT/wheels" compressed-tensors==0.17.0
# drop what the image already has in a compatible version (keeps one version of each there)
for keep_out in anyio- idna- certifi- h11- httpcore- httpx- tqdm- click- pyyaml- PyYAML- \
                packaging- filelock- requests- urllib3- charset_normalizer- prometheus_client-; do
  rm -f "$ROOT/wheels/${keep_out}"*.whl
done
du -sh "$ROOT/wheels"

# 3. Unpack, strip, patch, pack.
rm -rf "$ROOT/tree" && mkdir -p "$ROOT/tree"
python3 - "$DL" "$ROOT/tree" <<'PY'
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
du -sh "$ROOT/tree"
rm -f "$ROOT/vllm.tar.xz"
tar -C "$ROOT/tree" -cf - vllm vllm-0.26.0.dist-info | xz -9 -T2 > "$ROOT/vllm.tar.xz"
ls -l "$ROOT/vllm.tar.xz"

# 4. Split in two pieces that travel in two consecutive runs (64 MiB each, tree included).
rm -rf "$ROOT/p1" "$ROOT/p2" && mkdir -p "$ROOT/p1" "$ROOT/p2"
size=$(stat -c %s "$ROOT/vllm.tar.xz")
half=$(( (size + 1) / 2 ))
# piece 1 is smaller: it travels with the wheels
first=$(( half - 7*1024*1024 ))
head -c "$first" "$ROOT/vllm.tar.xz" > "$ROOT/p1/vllm.tar.xz.part1"
tail -c +"$((first + 1))" "$ROOT/vllm.tar.xz" > "$ROOT/p2/vllm.tar.xz.part2"
cp -r "$ROOT/wheels" "$ROOT/p1/wheels"
sha256sum "$ROOT/vllm.tar.xz" | awk '{print $1}' > "$ROOT/p2/vllm.tar.xz.sha256"
cp "$ROOT/p2/vllm.tar.xz.sha256" "$ROOT/p1/"
du -sh "$ROOT/p1" "$ROOT/p2"
