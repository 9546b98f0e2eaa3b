#!/usr/bin/env bash
# Runs THERE (the borrowed GPU machine, no network), from the root of the repo copy the device
# tool made. Only the carried .device/ paths are read (the copy itself is another checkout).
#   bash .device/src/bench/gpu/bootstrap.sh take N   # run N, carry [".device/src", ".device/pN"]:
#                                                    # keep piece N; once all are there, unpack
#   source /root/ew/src/bench/gpu/env.sh             # then: PYTHONPATH, PATH, vLLM's environment
# Everything lives in EW (/root/ew), outside the repo copy; it survives between calls while the
# machine stays warm (~30 s idle). Unpacked: EW/site (wheels), EW/vllm, EW/jre + EW/kafka-libs
# (jars rebuilt from stage.sh's unpacked classes), EW/model (the --real-dims dummy model dir),
# EW/src (this session's code copy, with kafka/libs -> EW/kafka-libs).
set -euo pipefail
EW=${EW:-/root/ew}
DEV=${DEV:-.device}
[ "${1:-}" = take ] && [ -n "${2:-}" ] || { echo "usage: bootstrap.sh take N" >&2; exit 2; }
mkdir -p "$EW/stage"

sync_code() {
  rm -rf "$EW/src" && cp -a "$DEV/src" "$EW/src"
  ln -sfn "$EW/kafka-libs" "$EW/src/kafka/libs"
  echo "bootstrap: code $(cut -c1-10 "$EW/src/COMMIT")"
}

rebuild_jars() {  # EW/jars/<name>/ (unpacked classes) -> EW/kafka-libs/<name>.jar, stored
  python3 - "$EW/jars" "$EW/kafka-libs" <<'PY'
import pathlib, sys, zipfile
src, dst = (pathlib.Path(a) for a in sys.argv[1:3])
dst.mkdir(parents=True, exist_ok=True)
for folder in sorted(p for p in src.iterdir() if p.is_dir()):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(folder).as_posix() != "META-INF/MANIFEST.MF")
    with zipfile.ZipFile(dst / f"{folder.name}.jar", "w", zipfile.ZIP_STORED) as jar:
        for path in files:
            jar.write(path, path.relative_to(folder).as_posix())
print(f"bootstrap: {len(list(dst.glob('*.jar')))} jars rebuilt")
PY
  touch "$EW/kafka-libs/.resolved"
}

unpack() {
  cat "$EW"/stage/bundle.part.* > "$EW/stage/bundle.tar"
  echo "$(sed -n 's/^sha256=//p' "$EW/stage/MANIFEST")  $EW/stage/bundle.tar" | sha256sum -c -
  tar -C "$EW/stage" -xf "$EW/stage/bundle.tar" && rm -f "$EW/stage/bundle.tar" "$EW"/stage/bundle.part.*
  rm -rf "$EW/vllm" "$EW/jre" "$EW/jars" "$EW/kafka-libs" "$EW/site" && mkdir -p "$EW/vllm"
  tar -C "$EW/vllm" -xJf "$EW/stage/vllm.tar.xz" &
  local vllm_pid=$!
  tar -C "$EW" -xJf "$EW/stage/kafka.tar.xz"
  rebuild_jars && rm -rf "$EW/jars"
  tar -C "$EW/stage" -xf "$EW/stage/wheels.tar"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$EW/site" "$EW"/stage/wheels/*.whl
  wait "$vllm_pid"
  rm -rf "$EW/stage"
  # from EW/src: the repo copy's own stream/ (another checkout) must not shadow the code copy
  (cd "$EW/src" && PYTHONPATH=$EW/src:$EW/site python3 -c "from pathlib import Path; \
from stream.engine.testmodel import write_test_model; write_test_model(Path('$EW/model'), real_dims=True); \
from stream.engine.families import ModelFamily; \
write_test_model(Path('$EW/model-qwen25'), family=ModelFamily.QWEN2_5_OMNI, real_dims=True)")
  "$EW/jre/bin/java" -version 2>&1 | head -1
  du -sh "$EW/vllm" "$EW/site" "$EW/jre" "$EW/kafka-libs" "$EW/model" "$EW/model-qwen25"
  touch "$EW/READY"
}

cp "$DEV/p$2"/bundle.part.* "$DEV/p$2/MANIFEST" "$EW/stage/"
sync_code
have=$(ls "$EW"/stage/bundle.part.* | wc -l)
want=$(sed -n 's/^pieces=//p' "$EW/stage/MANIFEST")
echo "bootstrap: piece $2 kept ($have of $want)"
[ "$have" = "$want" ] && unpack
if ls "$DEV"/extra/*.whl >/dev/null 2>&1; then   # wheels staged after the bundle (carry .device/extra)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$EW/site" \
    "$DEV"/extra/*.whl && echo "bootstrap: extra wheels $(ls "$DEV"/extra | tr '\n' ' ')"
fi
exit 0
