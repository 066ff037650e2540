#!/usr/bin/env bash
# Device check for issue 4, for a machine with a GPU (not yet run: no GPU was lent so far).
#   nccl: a single-GPU world is still a real NCCL communicator (one rank per visible GPU);
#   mpi:cuda: MPI on GPU buffers, if the MPI there is CUDA-aware (recorded either way).
# Needs a CUDA build of torch in the environment (pip install torch --index-url .../cu12x).
# Writes everything under $OUT (default ./gpu-collectives).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-collectives}
mkdir -p "$out"
bench=(python -m harness)
export BENCH_STORE="$out/bench.db" BENCH_RUN_DIR="$out/runs"
ngpu=$(python -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
echo "GPUs visible to torch: $ngpu" | tee "$out/summary.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  | tee -a "$out/summary.txt"

"${bench[@]}" env -b nccl:cuda --json > "$out/env.json" 2>&1
for n in 1 "$ngpu"; do
  [ "$n" -ge 1 ] || continue
  timeout 300 "${bench[@]}" run -w allreduce,allgather,reduce-scatter,broadcast,alltoall \
    -b nccl -p size=8B..1GiB*8 --budget 0.5 -n "$n" --timeout 120 \
    > "$out/nccl-$n.txt" 2>&1
  echo "nccl -n $n: exit $?" | tee -a "$out/summary.txt"
done
if command -v mpirun >/dev/null; then
  timeout 300 "${bench[@]}" run -w allreduce -b mpi:cuda -p size=8B..256MiB*8 --budget 0.5 \
    --launcher mpirun -n 1 > "$out/mpi-cuda.txt" 2>&1
  echo "mpi:cuda: exit $? (a not CUDA-aware MPI is one clear line, exit 2)" \
    | tee -a "$out/summary.txt"
fi
"${bench[@]}" export --format nccl-tests -o "$out/nccl-tests.txt" 2>>"$out/summary.txt"
cat "$out/summary.txt"
