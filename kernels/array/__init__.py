"""Dense-array kernels, one module per programming model, all with the same functions:

- `gemm(a, b)` -> a zero-argument op computing a @ b into a preallocated output, returning it;
- `stream(kind, a, b, c, scalar)` -> a zero-argument op for STREAM's copy/scale/add/triad,
  returning the array it wrote. The arrays are the model's own (see Backend.from_numpy).
"""
