#!/usr/bin/python3
"""bench/torch_step.py: the PyTorch twin of sdc's static training step, for side-by-side CPU timing.

Reads a compiled package's ir.json, builds the same MMDiT in PyTorch (the reference lesson's
network, as specs/lib/mmdit.mdl composes it) with exactly the network's state-dict names and
shapes (checked: the script stops if any name or shape differs), and times the step that
bench/step.ts times for sdc:

  a fixed random context of --context-tokens tokens and a fixed random pooled vector (frozen text
  features, no text encoder), x0 uniform in [-1, 1], eps ~ N(0, 1), sigma from the spec's training
  density, xt = (1 - sigma) x0 + sigma eps, the velocity target of ir.json's flow (x0 - eps when
  noiseAt = 0, eps - x0 when noiseAt = 1), network time t = 1 - sigma or sigma, the loss-weighted
  MSE; timed: forward, loss, backward, global-norm clipping to train.clip, Adam/AdamW (train's lr,
  betas, eps, weight decay) and the EMA (train.ema, with sdc's warmup min(ema, (1+n)/(10+n))) over
  every parameter. Drawing the batch and forming xt/target are outside the timed region, as in
  bench/step.ts (the static engine's host feeds).

Run it with Debian's python3-torch and OpenBLAS, not a pyenv python:

  apt-get install python3-torch libopenblas0-pthread
  /usr/bin/python3 bench/torch_step.py --generated generated/sd3-tiny --batch 64 --context-tokens 8

Threads: OpenBLAS gets --threads (default 2, through OPENBLAS_NUM_THREADS, set before torch
loads) and torch's own intra-op pool (OpenMP: elementwise ops, softmax, the conv, and oneDNN's
bf16 matmuls under --autocast) gets --torch-threads (default 1). The two pools spin on the same
cores and can fight; which split is fastest depends on the CPU and the network, so
bench/cpu-vs-torch.ts tries several (1x1, 2x1, 1x2 as torch x OpenBLAS) and keeps the fastest.

OpenBLAS's kernel: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from this process's
environment (so OpenBLAS picks its own kernel for the CPU); --keep-openblas-env keeps them. When
the OpenBLAS that torch loaded falls back to its Prescott (SSE3) kernels on a CPU with AVX-512
(Debian's OpenBLAS 0.3.21 does so on CPUs it does not know, e.g. Emerald Rapids: sgemm 7x
slower), the script re-executes itself once with OPENBLAS_CORETYPE=SKYLAKEX and says so
("coreForced" in the JSON); --no-force-coretype keeps the fallback. The core is read with
openblas_get_corename (ctypes, on the library in /proc/self/maps), and threadpoolctl's view is
added where it is installed.

Adam is the multi-tensor one (foreach=True, --no-foreach for the per-tensor loop).
--autocast bf16 runs the forward and the loss under torch.autocast("cpu", dtype=torch.bfloat16)
(GEMMs and the conv in bf16 with fp32 accumulation; master weights, gradients, Adam and the EMA in
fp32). The output says what it ran with.

--check WEIGHTS.safetensors (PyTorch names) with --check-inputs INPUTS.safetensors (x0, eps [B, H,
W, C] channels last as sdc, sigma [B], context [B, T, D], pooled [B, P]) prints the loss of one
step's forward on those numbers, and the gradient norm, for a numeric comparison with sdc.
--fixture DIR/NAME (e.g. /work/shared/reference/mmdit-fixtures/mmdit-tiny-a) checks the twin's
forward pass against the reference PyTorch network's recorded output instead.

Exit codes: 0 ok, 1 user error (no torch, bad package, twin/IR mismatch), 2 usage.
"""
import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time

ap = argparse.ArgumentParser(description="PyTorch twin of sdc's training step (CPU timing)")
ap.add_argument("--generated", default="generated/sd3-tiny", help="compiled package folder with ir.json")
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--context-tokens", type=int, default=8)
ap.add_argument("--steps", type=int, default=10, help="timed steps")
ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
ap.add_argument("--threads", type=int, default=2, help="OpenBLAS threads (OPENBLAS_NUM_THREADS); 0 = leave the environment's setting")
ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (torch.set_num_threads)")
ap.add_argument("--keep-openblas-env", action="store_true", help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment")
ap.add_argument("--foreach", action=argparse.BooleanOptionalAction, default=True, help="multi-tensor (foreach) Adam (default; --no-foreach: per tensor)")
ap.add_argument("--autocast", choices=["none", "bf16"], default="none", help="bf16: forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
ap.add_argument("--force-coretype", action=argparse.BooleanOptionalAction, default=True, help="re-run with OPENBLAS_CORETYPE=SKYLAKEX when OpenBLAS falls back to Prescott on an AVX-512 CPU (default)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--show-config", action="store_true", help="also print torch.__config__.show() and parallel_info()")
ap.add_argument("--json", action="store_true", help="one JSON line on stdout (progress on stderr)")
ap.add_argument("--check", metavar="WEIGHTS", help="safetensors weights (PyTorch names): print the loss on --check-inputs")
ap.add_argument("--check-inputs", metavar="INPUTS", help="safetensors with x0, eps, sigma, context, pooled (channels last)")
ap.add_argument("--fixture", metavar="PREFIX", help="reference fixture prefix: PREFIX.weights.safetensors, PREFIX.io.safetensors, reference.json beside it")
args = ap.parse_args()


def fail(msg, code=1):
    print(f"torch_step: {msg}", file=sys.stderr)
    sys.exit(code)


for name, v in [("--batch", args.batch), ("--context-tokens", args.context_tokens), ("--steps", args.steps)]:
    if v < 1:
        fail(f"{name} must be a positive integer, got {v}", 2)
if args.warmup < 0 or args.threads < 0 or args.torch_threads < 1:
    fail("--warmup and --threads must be >= 0, --torch-threads >= 1", 2)
if args.check and not args.check_inputs:
    fail("--check needs --check-inputs", 2)

# The environment OpenBLAS reads when it loads (with torch): set before the import.
# FORCED_CORETYPE: set by this script for its own re-execution (see force_coretype below)
FORCED_CORETYPE = "SDC_TORCH_STEP_FORCED_CORETYPE"
forced_core = os.environ.pop(FORCED_CORETYPE, None)
env_before = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")}
if forced_core is not None:
    env_before = json.loads(os.environ.pop(FORCED_CORETYPE + "_ENV", "{}")) or env_before
if not args.keep_openblas_env:
    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ.pop("OPENBLAS_L2_SIZE", None)
if forced_core is not None:
    os.environ["OPENBLAS_CORETYPE"] = forced_core
if args.threads > 0:
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    fail(
        f"{sys.executable} cannot import torch ({e}). This benchmark runs Debian's PyTorch with OpenBLAS:\n"
        "  apt-get install python3-torch libopenblas0-pthread\n"
        "and then: /usr/bin/python3 bench/torch_step.py ..."
    )

torch.set_num_threads(args.torch_threads)


# ---------------------------------------------------------------------------------------------
# What we run with: the BLAS torch actually loaded (from /proc/self/maps) and its configuration.

def blas_info():
    info = {"library": None, "config": None, "core": None, "threads": None}
    try:
        libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if ".so" in line and ("blas" in line or "lapack" in line)})
    except OSError:
        libs = []
    info["loaded"] = libs
    import ctypes

    for path in sorted(libs, key=lambda x: "libopenblas" not in x):  # the library itself first
        if "openblas" not in path:
            continue
        try:
            lib = ctypes.CDLL(path)
            cfg = lib.openblas_get_config
            cfg.restype = ctypes.c_char_p
            core = lib.openblas_get_corename
            core.restype = ctypes.c_char_p
            info.update(library=path, config=cfg().decode(), core=core().decode(), threads=int(lib.openblas_get_num_threads()))
            break
        except (OSError, AttributeError):
            continue
    if info["library"] is None:
        info["library"] = libs[0] if libs else "none found"
    try:  # threadpoolctl, where installed, says the same from its side
        import threadpoolctl

        info["threadpoolctl"] = threadpoolctl.threadpool_info()
    except ImportError:
        pass
    return info


def cpu_has(flag):
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return flag in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def force_coretype():
    """OpenBLAS on its Prescott fallback on an AVX-512 CPU: run this script again with its SkylakeX
    kernels (OPENBLAS_CORETYPE is read once, when the library loads, so it takes a new process)."""
    if forced_core is not None or not args.force_coretype or args.keep_openblas_env:
        return
    core = blas_info()["core"]
    if core is None or core.lower() != "prescott" or not cpu_has("avx512f"):
        return
    print("torch_step: OpenBLAS fell back to its Prescott kernels on this AVX-512 CPU: running again with OPENBLAS_CORETYPE=SKYLAKEX", file=sys.stderr, flush=True)
    env = dict(os.environ, **{FORCED_CORETYPE: "SKYLAKEX", FORCED_CORETYPE + "_ENV": json.dumps(env_before)})
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# ---------------------------------------------------------------------------------------------
# The network: the reference's MMDiT with diffusers' state-dict names.

def layer_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


class AdaNormZero(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.linear = nn.Linear(w, 6 * w)

    def forward(self, x, emb):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.linear(F.silu(emb)).chunk(6, dim=1)
        h = layer_norm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        return h, gate_msa, shift_mlp, scale_mlp, gate_mlp


class AdaNormContinuous(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.linear = nn.Linear(w, 2 * w)

    def forward(self, x, cond):
        scale, shift = self.linear(F.silu(cond)).chunk(2, dim=1)
        return layer_norm(x) * (1 + scale[:, None]) + shift[:, None]


class GeluProj(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.proj = nn.Linear(i, o)

    def forward(self, x):
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, w, mult):
        super().__init__()
        self.net = nn.ModuleList([GeluProj(w, mult * w), nn.Identity(), nn.Linear(mult * w, w)])  # net.1 is the reference's dropout

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class JointAttention(nn.Module):
    def __init__(self, w, heads, pre_only):
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v = nn.Linear(w, w), nn.Linear(w, w), nn.Linear(w, w)
        self.add_q_proj, self.add_k_proj, self.add_v_proj = nn.Linear(w, w), nn.Linear(w, w), nn.Linear(w, w)
        self.to_out = nn.ModuleList([nn.Linear(w, w)])
        self.to_add_out = None if pre_only else nn.Linear(w, w)

    def forward(self, x, c):
        b, n, w = x.shape
        t = c.shape[1]
        h = self.heads
        d = w // h
        q = torch.cat([self.to_q(x), self.add_q_proj(c)], 1)  # image first
        k = torch.cat([self.to_k(x), self.add_k_proj(c)], 1)
        v = torch.cat([self.to_v(x), self.add_v_proj(c)], 1)
        q, k, v = (z.view(b, n + t, h, d).transpose(1, 2) for z in (q, k, v))  # [B, H, S, d]
        # explicit attention: Debian's torch 1.13 has no F.scaled_dot_product_attention
        p = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d)), dim=-1)
        o = torch.matmul(p, v).transpose(1, 2).reshape(b, n + t, w)
        ox, oc = o[:, :n], o[:, n:]
        ox = self.to_out[0](ox)
        if self.to_add_out is not None:
            oc = self.to_add_out(oc)
        return ox, oc


class MMDiTBlock(nn.Module):
    def __init__(self, w, heads, mlp_ratio, pre_only):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = AdaNormZero(w)
        self.norm1_context = AdaNormContinuous(w) if pre_only else AdaNormZero(w)
        self.attn = JointAttention(w, heads, pre_only)
        self.ff = FeedForward(w, mlp_ratio)
        self.ff_context = None if pre_only else FeedForward(w, mlp_ratio)

    def forward(self, h, c, y):
        nh, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(h, y)
        if self.pre_only:
            nc = self.norm1_context(c, y)
        else:
            nc, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = self.norm1_context(c, y)
        ah, ac = self.attn(nh, nc)
        h = h + gate_msa[:, None] * ah
        mh = layer_norm(h) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        h = h + gate_mlp[:, None] * self.ff(mh)
        if not self.pre_only:
            c = c + c_gate_msa[:, None] * ac
            mc = layer_norm(c) * (1 + c_scale_mlp[:, None]) + c_shift_mlp[:, None]
            c = c + c_gate_mlp[:, None] * self.ff_context(mc)
        return h, c


def sincos_2d_table(width, grid, base):
    """diffusers' get_2d_sincos_pos_embed on a grid x grid table (row-major), as runtime/nn/functional.ts."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(grid, dtype=torch.float64) / (grid / base)
    pw = coords[None, :].expand(grid, grid).reshape(-1)  # w coordinate: the first half
    ph = coords[:, None].expand(grid, grid).reshape(-1)
    ow, oh = pw[:, None] * omega[None], ph[:, None] * omega[None]
    return torch.cat([ow.sin(), ow.cos(), oh.sin(), oh.cos()], 1).float()[None]  # [1, grid*grid, width]


class PatchEmbed(nn.Module):
    def __init__(self, w, patch, channels, max_grid, grid):
        super().__init__()
        self.proj = nn.Conv2d(channels, w, patch, stride=patch)
        self.max_grid = max_grid
        self.register_buffer("pos_embed", sincos_2d_table(w, max_grid, grid))

    def forward(self, x):  # x [B, C, H, W]
        h = self.proj(x)
        gh, gw = h.shape[2], h.shape[3]
        m = self.max_grid
        top, left = (m - gh) // 2, (m - gw) // 2
        pos = self.pos_embed.view(1, m, m, -1)[:, top : top + gh, left : left + gw].reshape(1, gh * gw, -1)
        return h.flatten(2).transpose(1, 2) + pos


class MLPEmbed(nn.Module):
    def __init__(self, i, w):
        super().__init__()
        self.linear_1 = nn.Linear(i, w)
        self.linear_2 = nn.Linear(w, w)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class TimeTextEmbed(nn.Module):
    def __init__(self, w, pooled_dim, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.timestep_embedder = MLPEmbed(freq_dim, w)
        self.text_embedder = MLPEmbed(pooled_dim, w)
        half = freq_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half), persistent=False)

    def forward(self, t, pooled):
        a = t[:, None].float() * self.freqs[None]
        te = torch.cat([a.cos(), a.sin()], 1)  # flip_sin_to_cos: cos first
        return self.timestep_embedder(te) + self.text_embedder(pooled)


class MMDiT(nn.Module):
    def __init__(self, heads, head_dim, depth, patch, channels, max_grid, context_dim, pooled_dim, height, mlp_ratio=4):
        super().__init__()
        w = heads * head_dim
        self.patch, self.channels = patch, channels
        self.pos_embed = PatchEmbed(w, patch, channels, max_grid, height // patch)
        self.time_text_embed = TimeTextEmbed(w, pooled_dim)
        self.context_embedder = nn.Linear(context_dim, w)
        self.transformer_blocks = nn.ModuleList([MMDiTBlock(w, heads, mlp_ratio, i == depth - 1) for i in range(depth)])
        self.norm_out = AdaNormContinuous(w)
        self.proj_out = nn.Linear(w, patch * patch * channels)

    def forward(self, x, t, context, pooled):  # x [B, C, H, W] -> velocity [B, C, H, W]
        b, _, hh, ww = x.shape
        p, ch = self.patch, self.channels
        h = self.pos_embed(x)
        y = self.time_text_embed(t, pooled)
        c = self.context_embedder(context)
        for blk in self.transformer_blocks:
            h, c = blk(h, c, y)
        out = self.proj_out(self.norm_out(h, y))
        gh, gw = hh // p, ww // p
        out = out.view(b, gh, gw, p, p, ch)
        return torch.einsum("nhwpqc->nchpwq", out).reshape(b, ch, gh * p, gw * p)


# ---------------------------------------------------------------------------------------------
# The flow (runtime/flow/schedule.ts): densities, convention, loss weights.

def sample_sigmas(d, n, gen):
    k = d["kind"]
    if k == "uniform":
        return torch.rand(n, generator=gen)
    if k == "uniform_clipped":
        return (1 - d["eps"]) * (1 - torch.rand(n, generator=gen))
    if k == "logit_normal":
        return torch.sigmoid(d["m"] + d["s"] * torch.randn(n, generator=gen))
    if k == "mode":
        u = torch.rand(n, generator=gen)
        c = torch.cos(math.pi * u / 2)
        return (1 - u - d["s"] * (c * c - 1 + u)).clamp(0, 1)
    if k == "cosmap":
        u = torch.rand(n, generator=gen)
        return 1 - 1 / (torch.tan(math.pi * u / 2) + 1)
    fail(f"ir.json flow.density.kind {k!r} is not one this script knows")


def loss_weight(flow, sigma):
    wk = flow.get("weighting", "none")
    if wk == "none":
        return torch.ones_like(sigma)
    if wk == "x0":
        return sigma * sigma
    if wk == "eps":
        return (1 - sigma) ** 2
    if wk == "snr_clip":
        q = 1 - sigma
        g = flow.get("snrGamma", 5)
        return torch.where(q == 0, torch.ones_like(sigma), torch.clamp(g * sigma * sigma / (q * q).clamp_min(1e-30), max=1))
    fail(f"ir.json flow.weighting {wk!r} is not one this script knows")


def training_pair(flow, x0, eps, sigma):
    s = sigma.view(-1, *([1] * (x0.dim() - 1)))
    xt = (1 - s) * x0 + s * eps
    if flow["noiseAt"] == 1:
        return xt, sigma.clone(), eps - x0
    return xt, 1 - sigma, x0 - eps


# ---------------------------------------------------------------------------------------------
# Package, twin, check of names and shapes.

def load_ir(folder):
    path = os.path.join(folder, "ir.json")
    try:
        with open(path) as f:
            ir = json.load(f)
    except FileNotFoundError:
        fail(f"{path}: not found (compile a spec first, e.g. npx sdc compile specs/sd3.mdl)")
    except json.JSONDecodeError as e:
        fail(f"{path}: not valid JSON ({e})")
    net = ir.get("network", {})
    if ir.get("task", {}).get("kind") != "diffusion" or net.get("block") != "mmdit":
        fail(f"{path}: this benchmark builds the mmdit diffusion network; this package's network is {net.get('block')!r} ({ir.get('task', {}).get('kind')})")
    return ir


KNOWN_ARGS = {"heads", "head_dim", "depth", "mlp_ratio", "patch", "channels", "max_grid", "context_dim", "pooled_dim"}


def build_twin(ir):
    a = dict(ir["network"]["args"])
    extra = set(a) - KNOWN_ARGS
    if extra:
        fail(f"ir.json network.args has {sorted(extra)}, which this PyTorch twin does not implement")
    return MMDiT(a["heads"], a["head_dim"], a["depth"], a["patch"], a["channels"], a["max_grid"], a["context_dim"], a["pooled_dim"], ir["data"]["height"], a.get("mlp_ratio", 4))


def check_names(model, expected, what):
    """expected: {name: shape}; stops with the difference unless the state dict is exactly that."""
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k}: twin {got[k]}, {what} {expected[k]}" for k in expected if k in got and got[k] != list(expected[k])]
    if missing or unexpected or shapes:
        lines = [f"the PyTorch twin's state dict differs from {what}:"]
        lines += [f"  missing in the twin: {k} {expected[k]}" for k in missing]
        lines += [f"  not in {what}: {k} {got[k]}" for k in unexpected]
        lines += [f"  shape: {s}" for s in shapes]
        fail("\n".join(lines))


def read_safetensors(path):
    import numpy as np

    dt = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if len(raw) < 8:
        fail(f"{path}: truncated")
    n = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8 : 8 + n])
    except ValueError:
        fail(f"{path}: not a safetensors file (bad header)")
    body = memoryview(raw)[8 + n :]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] not in dt:
            fail(f"{path}: tensor {k} has dtype {v['dtype']}; only F32/F64/I32/I64 are read here")
        b, e = v["data_offsets"]
        arr = np.frombuffer(body[b:e], dtype=dt[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.astype(np.float32) if v["dtype"] != "I64" else arr.copy())
    return out


def network_params(ir):
    # ir.json lists the network's state dict first (reference names), then text_encoder.*
    return {p["name"]: p["shape"] for p in ir["parameters"] if not p["name"].startswith("text_encoder.")}


def say(msg):
    print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)


# ---------------------------------------------------------------------------------------------

def run_fixture(prefix):
    ref_path = os.path.join(os.path.dirname(prefix), "reference.json")
    name = os.path.basename(prefix)
    try:
        ref = json.load(open(ref_path))[name]
    except (OSError, KeyError, ValueError) as e:
        fail(f"{ref_path}: no configuration {name!r} ({e})")
    c = ref["config"]
    model = MMDiT(c["num_attention_heads"], c["attention_head_dim"], c["num_layers"], c["patch_size"], c["in_channels"], c["pos_embed_max_size"], c["joint_attention_dim"], c["pooled_projection_dim"], c["sample_size"])
    check_names(model, ref["state_dict"], "reference.json")
    model.load_state_dict(read_safetensors(prefix + ".weights.safetensors"))
    io = read_safetensors(prefix + ".io.safetensors")
    nparams = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        out = model(io["x"], io["timestep"], io["text_embeddings"], io["pooled_text_embeddings"])
    err = (out - io["output"]).abs().max().item()
    scale = io["output"].abs().max().item()
    ok = nparams == ref["params"] and err <= 1e-4 * max(1.0, scale)
    res = {"bench": "torch_step", "mode": "fixture", "fixture": name, "params": nparams, "referenceParams": ref["params"], "maxAbsError": err, "outputMaxAbs": scale, "ok": ok}
    print(json.dumps(res) if args.json else f"fixture {name}: {nparams:,} parameters (reference {ref['params']:,}), max |twin - reference| = {err:.3g} (output max {scale:.3g}): {'ok' if ok else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


def main():
    force_coretype()
    if args.fixture:
        run_fixture(args.fixture)
    ir = load_ir(args.generated)
    torch.manual_seed(args.seed)
    model = build_twin(ir)
    check_names(model, network_params(ir), f"{args.generated}/ir.json")
    nparams = sum(p.numel() for p in model.parameters())
    expected = ir.get("stats", {}).get("networkParams")
    if expected is not None and nparams != expected:
        fail(f"the twin has {nparams:,} parameters, ir.json stats.networkParams says {expected:,}")
    a = ir["network"]["args"]
    flow, tr = ir["flow"], ir["train"]
    opt = tr["optimizer"]
    height, width, channels = ir["data"]["height"], ir["data"]["width"], ir["data"]["channels"]
    B, T = args.batch, args.context_tokens
    say(f"network {args.generated} ({ir['spec']['name']}): {nparams:,} parameters, state dict equal to ir.json ({len(network_params(ir))} entries)")

    gen = torch.Generator().manual_seed(args.seed)
    context = torch.randn(B, T, a["context_dim"], generator=gen)
    pooled = torch.randn(B, a["pooled_dim"], generator=gen)

    params = [p for p in model.parameters()]
    kind = opt["kind"]
    okw = dict(lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"], weight_decay=opt["weightDecay"])
    if args.foreach:
        okw["foreach"] = True
    optim = (torch.optim.AdamW if kind == "adamw" else torch.optim.Adam)(params, **okw)
    clip = tr.get("clip") or 1  # as bench/step.ts: clip || 1
    ema_decay = tr.get("ema") or 0
    shadow = [p.detach().clone() for p in params] if ema_decay > 0 else None
    ema_updates = 0

    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.autocast == "bf16" else contextlib.nullcontext

    def step(x0, eps, sigma, ctx, pool):
        nonlocal ema_updates
        xt, t, target = training_pair(flow, x0, eps, sigma)
        wts = loss_weight(flow, sigma)
        t0 = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        with autocast():
            v = model(xt, t, ctx, pool).float()
            loss = ((v - target) ** 2).mean(dim=(1, 2, 3)).mul(wts).mean()
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, clip)
        optim.step()
        if shadow is not None:
            with torch.no_grad():
                d = min(ema_decay, (1 + ema_updates) / (10 + ema_updates))
                torch._foreach_mul_(shadow, d)
                torch._foreach_add_(shadow, params, alpha=1 - d)
            ema_updates += 1
        lv = loss.item()
        return (time.perf_counter() - t0) * 1000, lv, gnorm.item()

    if args.check:
        sd = read_safetensors(args.check)
        check_names(model, {k: list(v.shape) for k, v in sd.items() if not k.startswith("text_encoder.")}, args.check)
        model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("text_encoder.")})
        inp = read_safetensors(args.check_inputs)
        for k in ("x0", "eps", "sigma", "context", "pooled"):
            if k not in inp:
                fail(f"{args.check_inputs}: no tensor {k!r} (needs x0, eps [B, H, W, C], sigma [B], context [B, T, D], pooled [B, P])")
        to_nchw = lambda z: z.permute(0, 3, 1, 2).contiguous()
        _, lv, gn = step(to_nchw(inp["x0"]), to_nchw(inp["eps"]), inp["sigma"], inp["context"], inp["pooled"])
        res = {"bench": "torch_step", "mode": "check", "generated": args.generated, "params": nparams, "loss": lv, "gradNorm": gn}
        print(json.dumps(res) if args.json else f"loss {lv:.6f}, gradient norm {gn:.6f} (before clipping)")
        return

    times, last = [], float("nan")
    total = args.warmup + args.steps
    for i in range(total):
        x0 = torch.rand(B, channels, height, width, generator=gen) * 2 - 1
        eps = torch.randn(B, channels, height, width, generator=gen)
        sigma = sample_sigmas(flow["density"], B, gen)
        ms, last, _ = step(x0, eps, sigma, context, pooled)
        if i >= args.warmup:
            times.append(ms)
        print(f"step {i + 1}/{total}{' (warmup)' if i < args.warmup else ''}: {ms:.1f} ms, loss {last:.4f}", file=sys.stderr, flush=True)

    blas = blas_info()
    env_note = {k: {"inherited": env_before[k], "used": os.environ.get(k)} for k in env_before}
    res = {
        "bench": "torch_step",
        "generated": args.generated,
        "params": nparams,
        "batch": B,
        "contextTokens": T,
        "msPerStep": round(statistics.median(times), 2),
        "minMs": round(min(times), 2),
        "steps": args.steps,
        "warmup": args.warmup,
        "loss": round(last, 4),
        "torch": torch.__version__,
        "python": sys.executable,
        "torchThreads": torch.get_num_threads(),
        "openblasThreads": blas["threads"],
        "blas": {k: blas[k] for k in ("library", "config", "core")},
        "env": env_note,
        "optimizer": kind + (" (foreach)" if args.foreach else " (per tensor)"),
        "autocast": args.autocast,
        "coreForced": None if forced_core is None else f"{forced_core} (OpenBLAS fell back to Prescott on this AVX-512 CPU)",
        "ema": ema_decay,
        "host": f"{os.cpu_count()} x {cpu_model()}",
    }
    if "threadpoolctl" in blas:
        res["threadpoolctl"] = blas["threadpoolctl"]
    if args.show_config:
        say(torch.__config__.show() + torch.__config__.parallel_info())
    if args.json:
        print(json.dumps(res))
    else:
        print(f"ran with: torch {torch.__version__} ({sys.executable}), {blas['library']}: {blas['config']}, core {blas['core']}"
              f"{' (forced: ' + res['coreForced'] + ')' if forced_core else ''}, "
              f"OpenBLAS threads {blas['threads']}, torch intra-op threads {torch.get_num_threads()}, {res['optimizer']}, autocast {args.autocast}")
        print("environment: " + ", ".join(f"{k}={v['used'] if v['used'] is not None else 'unset'}" + (f" (was {v['inherited'] if v['inherited'] is not None else 'unset'})" if v["inherited"] != v["used"] else "") for k, v in env_note.items()))
        print(f"batch {B}, {T} context tokens: {res['msPerStep']} ms/step median, {res['minMs']} min over {args.steps} steps after {args.warmup} warmup; last loss {res['loss']}")


main()
