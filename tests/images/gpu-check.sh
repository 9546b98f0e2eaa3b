#!/bin/sh
# Run inside the analyzer-gpu image by tests/images/test_images.py (no GPU needed): gcc compiles
# against Python.h as Triton does at run time; every shared library of torch and vLLM resolves,
# libcuda.so apart (the node's driver: the NVIDIA container toolkit mounts it); vLLM imports.
# The last line of output is JSON: vllm and torch versions, unresolved libraries.

set -e
gcc --version | head -1
printf '#include <Python.h>\nint f(void){return Py_IsInitialized();}\n' > /tmp/t.c
include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
gcc -shared -fPIC /tmp/t.c -o /tmp/t.so -I"$include"
site=$(python -c 'import site; print(site.getsitepackages()[0])')
unresolved=$(find "$site/torch/lib" "$site/vllm" -name '*.so*' -type f -exec ldd {} + 2>/dev/null \
  | grep 'not found' | grep -v 'libcuda.so' | sort -u | tr -d '\t' | sed 's/ => not found//' || true)
python - "$unresolved" <<'EOF'
import json, sys
import torch, vllm
unresolved = [line for line in sys.argv[1].splitlines() if line.strip()]
print(json.dumps({"vllm": vllm.__version__, "torch": torch.__version__, "unresolved": unresolved}))
EOF
