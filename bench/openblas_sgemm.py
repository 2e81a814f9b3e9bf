"""OpenBLAS sgemm (Debian's libopenblas0-pthread, through ctypes) on the GEMMs of one linear
layer of a training step (M tokens, K inputs, N outputs), each at its own shape, as bench/native-gemm.ts lists them, for
bench/native-gemm.ts --openblas. Prints one JSON line per layout:
{"layout", "m", "n", "k", "threads", "core", "wallGflops", "cpuGflopsPerThread"}.

    OPENBLAS_NUM_THREADS=1 python3 bench/openblas_sgemm.py M N K REPS

When OpenBLAS does not know the CPU it falls back to Prescott (SSE3) kernels; on a CPU with
AVX-512 the caller sets OPENBLAS_CORETYPE=SKYLAKEX (the core name is printed to check)."""
import ctypes, json, os, random, sys, time

lib = None
for name in ("libopenblas.so.0", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"):
    try:
        lib = ctypes.CDLL(name)
        break
    except OSError:
        pass
if lib is None:
    sys.exit("openblas_sgemm: libopenblas.so.0 not found (apt-get install libopenblas0-pthread)")
lib.openblas_get_corename.restype = ctypes.c_char_p
lib.openblas_get_num_threads.restype = ctypes.c_int
core = lib.openblas_get_corename().decode()
threads = lib.openblas_get_num_threads()

M, N, K, REPS = (int(x) for x in sys.argv[1:5])
RowMajor, NoTrans, Trans = 101, 111, 112
F = ctypes.c_float


def buf(n):
    a = (F * n)()
    r = random.Random(n)
    for i in range(0, n, 97):
        a[i] = r.uniform(-1, 1)
    return a


# the GEMMs of a linear layer at their own shapes, row-major as in bench/native-gemm.ts:
# (name, op(A), op(B), m, n, k, A size, B size, lda, ldb)
layouts = [
    ("x W^T (forward)", NoTrans, Trans, M, N, K, M * K, N * K, K, K),
    ("dy W (input gradient)", NoTrans, NoTrans, M, K, N, M * N, N * K, N, K),
    ("dy^T x (weight gradient)", Trans, NoTrans, N, K, M, M * N, M * K, N, K),
    ("x^T dy (weight gradient, as a step runs it)", Trans, NoTrans, K, N, M, M * K, M * N, K, N),
]
for name, ta, tb, m, n, k, na, nb, lda, ldb in layouts:
    a, b, c = buf(na), buf(nb), (F * (m * n))()
    call = lambda: lib.cblas_sgemm(RowMajor, ta, tb, m, n, k, F(1.0), a, lda, b, ldb, F(0.0), c, n)
    for _ in range(max(3, REPS // 2)):
        call()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(REPS):
        call()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    gf = 2.0 * M * N * K * REPS / 1e9
    print(json.dumps({"layout": name, "m": m, "n": n, "k": k, "threads": threads, "core": core, "wallGflops": round(gf / wall, 1), "cpuGflopsPerThread": round(gf / cpu, 1)}))
