#!/usr/bin/env bash
# Device check for issue 7, for a machine with an NVIDIA GPU (not yet run: no GPU was lent so far).
#   one profiled torch:cuda case: the trace must hold CUDA kernels (summarize's basis "device"),
#   and with nvidia-ml-py installed the measurement carries NVML metrics (gpu_util_pct,
#   gpu_power_w, energy_per_iter_j, ...) instead of "gpu_counters: none: ...".
# Needs a CUDA build of torch (pip install torch --index-url .../cu12x) and nvidia-ml-py.
# Writes everything under $OUT (default ./gpu-profile).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-profile}
mkdir -p "$out"
bench=(python -m harness)
export BENCH_STORE="$out/bench.db" BENCH_RUN_DIR="$out/runs"
python -c 'import pynvml' 2>/dev/null || pip install -q 'nvidia-ml-py>=12' 2>&1 | tail -1
nvidia-smi --query-gpu=name,driver_version,power.draw --format=csv,noheader | tee "$out/summary.txt"
timeout 300 "${bench[@]}" run -w gemm -b torch:cuda -p m=4096 -p n=4096 -p k=4096 --budget 2 \
  --profile --json -q > "$out/run.json" 2> "$out/run.err"
echo "run: exit $?" | tee -a "$out/summary.txt"
python - "$out/run.json" <<'PY' | tee -a "$out/summary.txt"
import json, sys
m = json.load(open(sys.argv[1]))["measurements"][0]
print("median_s", m["summary"]["median"], "profile", m["timing"]["profile"])
print("gpu_counters", m["timing"]["gpu_counters"])
print({k: v for k, v in m["metrics"].items() if k.startswith(("gpu_", "energy", "device_"))})
PY
timeout 120 "${bench[@]}" profile summarize latest --top 8 | tee -a "$out/summary.txt"
