#!/usr/bin/python3
"""bench/torch_matmul.py: PyTorch's matmul GFLOP/s on the three GEMMs of one linear layer of a
training step (M tokens, K inputs, N outputs), each at its own shape (as bench/native-gemm.ts and
bench/openblas_sgemm.py run them), for the GEMM table of
bench/cpu-vs-torch.ts. One JSON line per layout and thread count:
{"layout", "m", "n", "k", "dtype", "threads", "wallGflops", "engine"}.

    /usr/bin/python3 bench/torch_matmul.py M N K REPS [--dtype bf16] [--threads 1,2]

--dtype bf16 (default): operands in bfloat16, as torch.autocast("cpu", bfloat16) gives a Linear
(oneDNN's kernels where torch is built with it: AMX or AVX512-BF16 where the CPU has them); fp32:
torch's BLAS (OpenBLAS in Debian's build). torch.set_num_threads sets the threads;
OPENBLAS_NUM_THREADS follows it for fp32. Exit codes: 0 ok, 1 no torch, 2 usage."""
import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser(description="PyTorch matmul GFLOP/s on a step's GEMM layouts")
ap.add_argument("m", type=int)
ap.add_argument("n", type=int)
ap.add_argument("k", type=int)
ap.add_argument("reps", type=int)
ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
ap.add_argument("--threads", default="1,2", help="comma-separated torch.set_num_threads counts")
args = ap.parse_args()
try:
    threads = [int(t) for t in args.threads.split(",")]
except ValueError:
    print(f"torch_matmul: --threads takes comma-separated integers, got {args.threads!r}", file=sys.stderr)
    sys.exit(2)
if min(args.m, args.n, args.k, args.reps, *threads) < 1:
    print("torch_matmul: M, N, K, REPS and --threads must be positive", file=sys.stderr)
    sys.exit(2)
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(max(threads)))
try:
    import torch
except ImportError as e:
    print(f"torch_matmul: {sys.executable} cannot import torch ({e}): apt-get install python3-torch libopenblas0-pthread", file=sys.stderr)
    sys.exit(1)

M, N, K = args.m, args.n, args.k
dt = torch.bfloat16 if args.dtype == "bf16" else torch.float32
g = torch.Generator().manual_seed(0)
r = lambda *s: torch.randn(*s, generator=g).to(dt)
# the GEMMs of a linear layer at their own shapes, as bench/native-gemm.ts lists them (name, A, B, f, [m, n, k])
layouts = [
    ("x W^T (forward)", r(M, K), r(N, K), lambda a, b: torch.matmul(a, b.t()), (M, N, K)),
    ("dy W (input gradient)", r(M, N), r(N, K), lambda a, b: torch.matmul(a, b), (M, K, N)),
    ("dy^T x (weight gradient)", r(M, N), r(M, K), lambda a, b: torch.matmul(a.t(), b), (N, K, M)),
    ("x^T dy (weight gradient, as a step runs it)", r(M, K), r(M, N), lambda a, b: torch.matmul(a.t(), b), (K, N, M)),
]
engine = f"torch {torch.__version__}, mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'}"
for t in threads:
    torch.set_num_threads(t)
    for name, a, b, f, (m, n, k) in layouts:
        for _ in range(max(3, args.reps // 2)):
            f(a, b)
        t0 = time.perf_counter()
        for _ in range(args.reps):
            f(a, b)
        wall = time.perf_counter() - t0
        gf = 2.0 * M * N * K * args.reps / 1e9
        print(json.dumps({"layout": name, "m": m, "n": n, "k": k, "dtype": args.dtype, "threads": t, "wallGflops": round(gf / wall, 1), "engine": engine}), flush=True)
