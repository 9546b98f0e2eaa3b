#!/bin/sh
# Run inside the analyzer-gpu image by tests/images/test_images.py (no GPU needed): gcc builds a
# shared object against Python.h as Triton does at run time; every shared library of torch and
# vLLM resolves, libcuda.so apart (the node's driver: the NVIDIA container toolkit mounts it);
# vLLM imports (its compiled extensions need libcuda.so.1 to load: a GPU node). The last line
# of output is JSON.
set -e
gcc --version | head -1
printf '#include <Python.h>\nint f(void){return Py_IsInitialized();}\n' > /tmp/t.c
include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
gcc -shared -fPIC /tmp/t.c -o /tmp/t.so -I"$include"
site=$(python -c 'import site; print(site.getsitepackages()[0])')
# vLLM's extensions find torch's and the CUDA wheels' libraries because torch loads them first;
# ldd looks on the same paths (torch/lib, nvidia/*/lib).
libs=$(printf '%s:' "$site"/torch/lib "$site"/nvidia/*/lib)
unresolved=$(find "$site/torch/lib" "$site/vllm" -name '*.so*' -type f \
  -exec env LD_LIBRARY_PATH="$libs" ldd {} + 2>/dev/null | grep 'not found' \
  | grep -v 'libcuda.so' | sort -u | tr -d '\t' | sed 's/ => not found//' || true)
python - "$unresolved" <<'EOF'
import json, sys
import torch, vllm
unresolved = [line for line in sys.argv[1].splitlines() if line.strip()]
print(json.dumps({"vllm": vllm.__version__, "torch": torch.__version__, "unresolved": unresolved}))
EOF
