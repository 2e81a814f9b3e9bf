// Node-API glue of the CPU executor: a program (a Float64Array of instructions written by
// runtime/executors/native/native.ts) is decoded once against its arenas (JS-owned ArrayBuffers), every
// access range checked, and then run as often as asked with no further host work.
#include <node_api.h>

#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "isa.h"
#include "kernels.h"

namespace {

using sdc::Strided;

// the instruction codes, from runtime/graph/native-lower.ts (`npm run gen:native`)
enum Op {
#define OP(NAME, CODE) NAME = CODE,
#include "op_codes.inc"
#undef OP
};

struct LnArgs {
  float* out;
  const float* x;
  const float* dy;
  std::int64_t rows, d;
  float eps;
};
struct FillArgs {
  float* dst;
  std::int64_t n;
  float v;
};

using Kernel = std::variant<sdc::EwKernel, sdc::GemmKernel, sdc::SumToKernel, sdc::CopyKernel, sdc::AdamKernel, FillArgs, std::pair<int, LnArgs>, std::pair<int, sdc::WindowKernel>, sdc::ChainKernel>;

struct Arena {
  float* data;
  std::int64_t floats;
};

// An arena as decoded: its buffer stays referenced, and its data pointer and byte length are
// checked again before every run (a detached or resized buffer is an error, never a dangling read).
struct ArenaRef {
  napi_ref ref;
  void* data;
  std::size_t bytes;
};

struct Program {
  std::vector<Kernel> kernels;
  std::vector<ArenaRef> arenas;
  // the GEMM packing scratch: its size known at decode, allocated at the first run, freed with
  // the program; one run of a program at a time (`running`)
  std::int64_t scratch_floats = 0;
  std::unique_ptr<float[]> scratch;
  bool running = false;
};

// A malformed program: the kernel index and the field name are added where it is caught.
struct BadProgram : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void bad(const std::string& what) { throw BadProgram(what); }

// ---- checked arithmetic: every size, offset and extent of a program goes through these -----

constexpr std::int64_t MAX_INT = std::int64_t(1) << 53;  // integers a double holds exactly
std::int64_t add(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) bad("integer overflow (" + std::to_string(a) + " + " + std::to_string(b) + ")");
  return r;
}
std::int64_t mul(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) bad("integer overflow (" + std::to_string(a) + " * " + std::to_string(b) + ")");
  return r;
}
std::string show(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  char b[32];
  for (int digits = 15; digits <= 17; digits++) {  // the shortest that reads back as x
    std::snprintf(b, sizeof b, "%.*g", digits, x);
    if (std::strtod(b, nullptr) == x) break;
  }
  return b;
}

struct Reader {
  const double* p;
  std::size_t n, i = 0;
  const std::vector<Arena>& arenas;
  std::size_t kernel = 0;       // index of the kernel being decoded
  const char* op_name = "?";    // its instruction
  const char* field = "op";     // the field being read
  std::size_t left() const { return n - i; }
  double next(const char* name) {
    field = name;
    if (i >= n) bad("the program ends in the middle of an instruction");
    return p[i++];
  }
  // an integer field: finite, integral and at most 2^53 in magnitude, checked before any cast
  std::int64_t int_(const char* name) {
    const double x = next(name);
    if (!std::isfinite(x) || x != std::trunc(x) || std::fabs(x) > static_cast<double>(MAX_INT)) bad("expected an integer, got " + show(x));
    return static_cast<std::int64_t>(x);
  }
  // a size, count or stride: an integer in [lo, hi]
  std::int64_t in(const char* name, std::int64_t lo, std::int64_t hi) {
    const std::int64_t x = int_(name);
    if (x < lo || x > hi) bad(std::to_string(x) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
  }
  std::int64_t size(const char* name) { return in(name, 0, MAX_INT); }
  // a parameter (alpha, eps, scale, Adam's): finite and within float range
  float flt(const char* name) {
    const double x = next(name);
    if (!std::isfinite(x) || std::fabs(x) > 3.4028234663852886e38) bad("expected a finite float32, got " + show(x));
    return static_cast<float>(x);
  }
  // a value field (a constant, a fill): +-Inf and NaN are values (masks fill with -Inf), a finite
  // double outside float32's range is not (its cast would be undefined)
  float value(const char* name) {
    const double x = next(name);
    if (std::isfinite(x) && std::fabs(x) > 3.4028234663852886e38) bad("expected a float32 value, got " + show(x));
    return static_cast<float>(x);
  }
  // pointer fields come first in the encoding, sizes after: read the pair now, check later
  struct Ptr {
    std::int64_t arena, offset;
    const char* name;
  };
  Ptr raw_ptr(const char* name) {
    const std::int64_t a = in(name, -1, MAX_INT);
    const std::int64_t off = int_(name);
    return {a, off, name};
  }
  // the pointer to `extent` floats at r (arena -1: null, allowed only where `nullable`)
  float* resolve(const Ptr& r, std::int64_t extent, bool nullable = false) {
    field = r.name;
    if (r.arena == -1) {
      if (!nullable) bad("a null pointer (arena -1) where a buffer is required");
      return nullptr;
    }
    if (r.arena >= static_cast<std::int64_t>(arenas.size())) bad("arena " + std::to_string(r.arena) + " does not exist (" + std::to_string(arenas.size()) + " arenas)");
    const Arena& a = arenas[static_cast<std::size_t>(r.arena)];
    if (r.offset < 0 || extent < 0 || add(r.offset, extent) > a.floats)
      bad("access outside its arena (offset " + std::to_string(r.offset) + " + " + std::to_string(extent) + " > " + std::to_string(a.floats) + " floats of arena " + std::to_string(r.arena) + ")");
    return a.data ? a.data + r.offset : nullptr;
  }
  std::vector<std::int64_t> sizes(const char* name, std::int64_t k) {
    if (k > static_cast<std::int64_t>(left())) bad("the program ends in the middle of an instruction");
    std::vector<std::int64_t> v(static_cast<std::size_t>(k));
    for (auto& x : v) x = size(name);
    return v;
  }
};

// One past the furthest float a strided walk over `shape` touches (0 when the shape is empty).
std::int64_t extent_of(const std::vector<std::int64_t>& shape, const std::int64_t* st) {
  for (std::int64_t s : shape)
    if (s == 0) return 0;
  std::int64_t e = 1;
  for (std::size_t d = 0; d < shape.size(); d++) e = add(e, mul(shape[d] - 1, st[d]));
  return e;
}
std::int64_t prod(const std::vector<std::int64_t>& s) {
  std::int64_t p = 1;
  for (auto x : s) p = mul(p, x);
  return p;
}
// A written operand must not alias itself: sorted by stride, each axis steps past everything
// the smaller ones reach. This also bounds the work of the kernel by the size of its arena.
void require_disjoint(const std::vector<std::int64_t>& shape, const std::int64_t* st, const char* what) {
  std::vector<std::pair<std::int64_t, std::int64_t>> ax;  // (stride, size) of axes longer than 1
  for (std::size_t d = 0; d < shape.size(); d++)
    if (shape[d] == 0) return;
    else if (shape[d] > 1) ax.emplace_back(st[d], shape[d]);
  std::sort(ax.begin(), ax.end());
  std::int64_t reach = 0;  // furthest offset the smaller axes reach
  for (const auto& [s, len] : ax) {
    if (s <= reach) bad(std::string(what) + " overlaps itself (a stride of " + std::to_string(s) + ")");
    reach = add(reach, mul(len - 1, s));
  }
}
// Whether [a, a + na) and [b, b + nb) floats share memory (arenas may be one buffer twice).
bool overlaps(const float* a, std::int64_t na, const float* b, std::int64_t nb) {
  if (na <= 0 || nb <= 0) return false;
  const auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + 4 * static_cast<std::uintptr_t>(nb) && pb < pa + 4 * static_cast<std::uintptr_t>(na);
}
constexpr std::int64_t MAX_RANK = 16;
constexpr std::int64_t INT_DIM = 0x7fffffff;

// im2col / col2im: dst, src, then the image [B, H, W, C], the columns' Ho, Wo, and the window
// k, stride, pad; Ho and Wo must be what the window gives (so the two are adjoint).
sdc::WindowKernel decode_window(Reader& r, bool im2col) {
  r.op_name = im2col ? "im2col" : "col2im";
  sdc::WindowKernel q{};
  const auto dst = r.raw_ptr("dst"), src = r.raw_ptr("src");
  q.b = r.in("batch", 0, INT_DIM);
  q.h = r.in("height", 0, INT_DIM);
  q.w = r.in("width", 0, INT_DIM);
  q.c = r.in("channels", 0, INT_DIM);
  q.ho = r.in("output height", 1, INT_DIM);
  q.wo = r.in("output width", 1, INT_DIM);
  q.k = r.in("kernel", 1, INT_DIM);
  q.stride = r.in("stride", 1, INT_DIM);
  q.pad = r.in("pad", 0, INT_DIM);
  for (const auto& [name, n, o] : {std::make_tuple("output height", q.h, q.ho), std::make_tuple("output width", q.w, q.wo)}) {
    r.field = name;
    const std::int64_t span = add(n, mul(2, q.pad)) - q.k;
    if (span < 0 || span / q.stride + 1 != o) bad(std::to_string(o) + " is not what a window of " + std::to_string(q.k) + " at stride " + std::to_string(q.stride) + " and padding " + std::to_string(q.pad) + " gives on " + std::to_string(n));
  }
  r.field = "channels";
  const std::int64_t image = mul(mul(mul(q.b, q.h), q.w), q.c), cols = mul(mul(mul(mul(q.b, q.ho), q.wo), mul(q.k, q.k)), q.c);
  q.dst = r.resolve(dst, im2col ? cols : image);
  q.src = r.resolve(src, im2col ? image : cols);
  r.field = "src";
  if (overlaps(q.dst, im2col ? cols : image, q.src, im2col ? image : cols)) bad("the source overlaps the destination");
  return q;
}

Kernel decode(Reader& r) {
  const std::int64_t op = r.int_("op");
  switch (op) {
    case EW: {
      r.op_name = "elementwise";
      sdc::EwKernel k;
      const auto out = r.raw_ptr("out");
      const std::int64_t nd = r.in("rank", 1, MAX_RANK);
      k.shape = r.sizes("shape", nd);
      k.out = r.resolve(out, prod(k.shape));
      // each operand takes 2 + nd words, each code 3: counts beyond the program are malformed
      const std::int64_t nin = r.in("operands", 0, static_cast<std::int64_t>(r.left()) / (2 + nd));
      for (std::int64_t j = 0; j < nin; j++) {
        const auto p = r.raw_ptr("operand");
        Strided s;
        s.st = r.sizes("operand strides", nd);
        s.p = r.resolve(p, extent_of(k.shape, s.st.data()));
        k.in.push_back(std::move(s));
      }
      const std::int64_t nc = r.in("codes", 1, static_cast<std::int64_t>(r.left()) / 3);
      int sp = 0, depth = 0;
      for (std::int64_t c = 0; c < nc; c++) {
        sdc::EwCode e;
        e.kind = static_cast<int>(r.in("code kind", 0, 2));
        if (e.kind == 0) {
          if (nin == 0) bad("an operand code in an instruction without operands");
          e.op = static_cast<int>(r.in("operand index", 0, nin - 1));
          e.c = r.value("constant");
          sp++;
        } else if (e.kind == 1) {
          e.op = static_cast<int>(r.in("code op", 0, 0));
          e.c = r.value("constant");
          sp++;
        } else {
          e.op = static_cast<int>(r.in("operator", 0, 1 << 20));
          e.c = r.value("constant");
          const int a = sdc::ew_arity(e.op);
          if (a < 0) bad("unknown elementwise operator " + std::to_string(e.op));
          if (sp < a) bad("the elementwise code underflows its stack");
          sp = sp - a + 1;
        }
        depth = std::max(depth, sp);
        k.code.push_back(e);
      }
      r.field = "codes";
      if (sp != 1) bad("the elementwise code leaves " + std::to_string(sp) + " values");
      k.depth = depth;
      return k;
    }
    case GEMM:
    case GEMM_BF16: {  // the same fields; GEMM_BF16 rounds A and B to bf16
      r.op_name = op == GEMM ? "gemm" : "gemm_bf16";
      sdc::GemmKernel g{};
      g.bf16 = op == GEMM_BF16;
      const auto a = r.raw_ptr("a"), b = r.raw_ptr("b"), c = r.raw_ptr("c"), bias = r.raw_ptr("bias");
      g.batch[0] = r.size("batch[0]");
      g.batch[1] = r.size("batch[1]");
      g.m = r.in("m", 0, INT_DIM);
      g.n = r.in("n", 0, INT_DIM);
      g.k = r.in("k", 1, INT_DIM);  // k = 0 would leave C unwritten
      g.alpha = r.flt("alpha");
      for (int i = 0; i < 4; i++) g.as[i] = r.size("a strides");
      for (int i = 0; i < 4; i++) g.bs[i] = r.size("b strides");
      for (int i = 0; i < 4; i++) g.cs[i] = r.size("c strides");
      const std::vector<std::int64_t> sa = {g.batch[0], g.batch[1], g.m, g.k}, sb = {g.batch[0], g.batch[1], g.k, g.n}, sc = {g.batch[0], g.batch[1], g.m, g.n};
      r.field = "c strides";
      require_disjoint(sc, g.cs, "the output");  // batch * m * n <= the output's arena
      r.field = "k";
      if (g.k > 1 && (g.as[3] == 0 || g.bs[2] == 0)) bad("a and b must both step along k");  // k <= their arenas
      g.a = r.resolve(a, extent_of(sa, g.as));
      g.b = r.resolve(b, extent_of(sb, g.bs));
      g.c = r.resolve(c, extent_of(sc, g.cs));
      g.bias = r.resolve(bias, g.n, true);
      r.field = "k";
      if (sdc::gemm_scratch_floats(g) < 0) bad("the GEMM packing scratch size overflows");
      return g;
    }
    case SUM_TO: {
      r.op_name = "sum_to";
      sdc::SumToKernel k;
      const auto out = r.raw_ptr("out"), src = r.raw_ptr("src");
      const std::int64_t nd = r.in("rank", 1, MAX_RANK);
      k.shape = r.sizes("shape", nd);
      k.ost = r.sizes("output strides", nd);
      k.out_size = r.size("output size");
      k.scale = r.flt("scale");
      r.field = "output strides";
      if (extent_of(k.shape, k.ost.data()) > k.out_size) bad("sum_to writes outside its output");
      k.out = r.resolve(out, k.out_size);
      k.src = r.resolve(src, prod(k.shape));
      return k;
    }
    case LN:
    case LN_GRAD:
    case SOFTMAX:
    case SOFTMAX_GRAD: {
      r.op_name = op == LN ? "layer_norm" : op == LN_GRAD ? "layer_norm_grad" : op == SOFTMAX ? "softmax" : "softmax_grad";
      LnArgs a{};
      const bool grad = op == LN_GRAD || op == SOFTMAX_GRAD;
      const auto out = r.raw_ptr("out"), x = r.raw_ptr(op == SOFTMAX_GRAD ? "y" : "x");
      Reader::Ptr dy{-1, 0, "dy"};
      if (grad) dy = r.raw_ptr("dy");
      a.rows = r.size("rows");
      a.d = r.size("d");
      if (op == LN || op == LN_GRAD) a.eps = r.flt("eps");
      r.field = "d";
      const std::int64_t n = mul(a.rows, a.d);
      a.out = r.resolve(out, n);
      a.x = r.resolve(x, n);
      if (grad) a.dy = r.resolve(dy, n);
      return std::make_pair(static_cast<int>(op), a);
    }
    case COPY: {
      r.op_name = "copy";
      sdc::CopyKernel k;
      const auto dst = r.raw_ptr("dst"), src = r.raw_ptr("src");
      const std::int64_t nd = r.in("rank", 1, MAX_RANK);
      k.shape = r.sizes("shape", nd);
      k.dst_st = r.sizes("dst strides", nd);
      k.src_st = r.sizes("src strides", nd);
      r.field = "dst strides";
      require_disjoint(k.shape, k.dst_st.data(), "the destination");
      const std::int64_t de = extent_of(k.shape, k.dst_st.data()), se = extent_of(k.shape, k.src_st.data());
      k.dst = r.resolve(dst, de);
      k.src = r.resolve(src, se);
      // slice, pad, permute and concat read another buffer than they write
      r.field = "src";
      if (overlaps(k.dst, de, k.src, se)) bad("the source overlaps the destination");
      return k;
    }
    case IM2COL:
    case COL2IM:
      return std::make_pair(static_cast<int>(op), decode_window(r, op == IM2COL));
    case FILL: {
      r.op_name = "fill";
      FillArgs f{};
      const auto dst = r.raw_ptr("dst");
      f.n = r.size("n");
      f.v = r.value("value");
      f.dst = r.resolve(dst, f.n);
      return f;
    }
    case CHAIN: {
      // CHAIN nbatch steps locals, each local (pointer, floats of one batch), then each step as its
      // own instruction (GEMM, GEMM_BF16, SOFTMAX or SOFTMAX_GRAD), every one checked as it is on
      // its own; a step is one batch's share of it. A local tensor is nbatch blocks of `floats`,
      // batch i at i * floats, that only the steps read and write: each thread keeps its batch of
      // it in a buffer of its own, and the steps' operands at its address read and write there.
      r.op_name = "chain";
      sdc::ChainKernel k;
      k.nbatch = r.in("batches", 1, MAX_INT);
      const std::int64_t n = r.in("steps", 1, 64);
      const std::int64_t nl = r.in("locals", 0, 16);
      struct Local {
        const float* p;
        std::int64_t floats, at;
        bool written;
      };
      std::vector<Local> locals;
      std::int64_t used = 0;
      for (std::int64_t j = 0; j < nl; j++) {
        const auto p = r.raw_ptr("local");
        const std::int64_t floats = r.in("local floats", 1, sdc::CHAIN_LOCAL_FLOATS);
        const float* q = r.resolve(p, mul(k.nbatch, floats));
        r.field = "local floats";
        if (add(used, floats) > sdc::CHAIN_LOCAL_FLOATS) bad("the chain's local tensors pass " + std::to_string(sdc::CHAIN_LOCAL_FLOATS) + " floats");
        for (const Local& l : locals)
          if (l.p == q) bad("a local tensor listed twice");
        locals.push_back({q, floats, used, false});
        used = add(used, (floats + 15) / 16 * 16);  // each on a cache line
      }
      // operand `p` of a step: its local's offset (the step's batch j at j * floats, its one batch
      // within them) or -1; `write`: the step writes it (a local is written before it is read)
      const auto localOf = [&](const float* p, bool write, std::int64_t b0, std::int64_t b1, std::int64_t s0, std::int64_t s1, std::int64_t per_batch) -> std::int64_t {
        for (Local& l : locals) {
          if (l.p != p || !p) continue;
          if (!write && !l.written) bad("a step reads a local tensor before a step writes it");
          l.written = l.written || write;
          const bool rows = b1 <= 1 ? (b0 <= 1 || s0 == l.floats) : (s1 == l.floats && (b0 <= 1 || s0 == mul(b1, l.floats)));
          if (!rows || per_batch > l.floats) bad("a step's batch of a local tensor is not its block of " + std::to_string(l.floats) + " floats");
          return l.at;
        }
        return -1;
      };
      for (std::int64_t j = 0; j < n; j++) {
        r.field = "step";
        if (r.i < r.n && r.p[r.i] == CHAIN) bad("a chain inside a chain");  // no recursion deeper than one
        Kernel sub = decode(r);
        r.op_name = "chain";
        r.field = "step";
        sdc::ChainStep st{};
        if (auto* g = std::get_if<sdc::GemmKernel>(&sub)) {
          if (mul(g->batch[0], g->batch[1]) != k.nbatch) bad("a GEMM step of " + std::to_string(g->batch[0] * g->batch[1]) + " batches in a chain of " + std::to_string(k.nbatch));
          if (g->n < 2) bad("a GEMM step with n < 2 (a matrix-vector product) in a chain");
          st.kind = sdc::ChainStep::GEMM;
          st.g = *g;
          const auto one = [&](const std::int64_t* st4, std::int64_t rows, std::int64_t cols) { return extent_of({rows, cols}, st4 + 2); };
          st.local[0] = localOf(g->a, false, g->batch[0], g->batch[1], g->as[0], g->as[1], one(g->as, g->m, g->k));
          st.local[1] = localOf(g->b, false, g->batch[0], g->batch[1], g->bs[0], g->bs[1], one(g->bs, g->k, g->n));
          st.local[2] = localOf(g->c, true, g->batch[0], g->batch[1], g->cs[0], g->cs[1], one(g->cs, g->m, g->n));
        } else if (auto* a = std::get_if<std::pair<int, LnArgs>>(&sub); a && (a->first == SOFTMAX || a->first == SOFTMAX_GRAD)) {
          if (a->second.rows % k.nbatch != 0) bad(std::to_string(a->second.rows) + " rows are not a whole number of rows for each of " + std::to_string(k.nbatch) + " batches");
          st.kind = a->first == SOFTMAX ? sdc::ChainStep::SOFTMAX : sdc::ChainStep::SOFTMAX_GRAD;
          st.out = a->second.out;
          st.x = a->second.x;
          st.dy = a->second.dy;
          st.rows = a->second.rows;
          st.d = a->second.d;
          const std::int64_t block = mul(a->second.rows / k.nbatch, a->second.d);
          st.local[0] = localOf(st.x, false, k.nbatch, 1, block, 0, block);
          if (st.kind == sdc::ChainStep::SOFTMAX_GRAD) st.local[1] = localOf(st.dy, false, k.nbatch, 1, block, 0, block);
          st.local[2] = localOf(st.out, true, k.nbatch, 1, block, 0, block);
        } else {
          bad("a chain step must be a GEMM, a softmax or a softmax gradient");
        }
        if (st.kind == sdc::ChainStep::GEMM && st.g.bf16 && mul(add(st.g.n, 31), add(st.g.k, 1)) > sdc::CHAIN_B_FLOATS) bad("a bf16 GEMM step whose B of one batch, packed, passes " + std::to_string(sdc::CHAIN_B_FLOATS) + " floats");
        k.steps.push_back(st);
      }
      return k;
    }
    case ADAM: {
      r.op_name = "adam";
      sdc::AdamKernel k{};
      const auto g = r.raw_ptr("g"), p = r.raw_ptr("p"), m = r.raw_ptr("m"), v = r.raw_ptr("v"), ema = r.raw_ptr("ema"), hyper = r.raw_ptr("hyper"), stats = r.raw_ptr("stats");
      k.n = r.size("n");
      k.beta1 = r.flt("beta1");
      k.beta2 = r.flt("beta2");
      k.eps = r.flt("eps");
      k.wd = r.flt("weight decay");
      k.clip = r.flt("clip");
      k.decoupled = r.in("decoupled", 0, 1) != 0;
      k.g = r.resolve(g, k.n);
      k.p = r.resolve(p, k.n);
      k.m = r.resolve(m, k.n);
      k.v = r.resolve(v, k.n);
      k.ema = r.resolve(ema, k.n, true);
      k.hyper = r.resolve(hyper, 4);
      k.stats = r.resolve(stats, 2);
      return k;
    }
  }
  bad("unknown instruction " + std::to_string(op));
}

void run_kernel(const Kernel& k) {
  struct V {
    void operator()(const sdc::EwKernel& x) const { sdc::run_ew(x); }
    void operator()(const sdc::GemmKernel& x) const { sdc::run_gemm(x); }
    void operator()(const sdc::SumToKernel& x) const { sdc::run_sum_to(x); }
    void operator()(const sdc::CopyKernel& x) const { sdc::run_copy(x); }
    void operator()(const sdc::AdamKernel& x) const { sdc::run_adam(x); }
    void operator()(const FillArgs& x) const { sdc::run_fill(x.dst, x.n, x.v); }
    void operator()(const sdc::ChainKernel& x) const { sdc::run_chain(x); }
    void operator()(const std::pair<int, sdc::WindowKernel>& x) const { x.first == IM2COL ? sdc::run_im2col(x.second) : sdc::run_col2im(x.second); }
    void operator()(const std::pair<int, LnArgs>& x) const {
      const LnArgs& a = x.second;
      switch (x.first) {
        case LN:
          sdc::run_layer_norm(a.out, a.x, a.rows, a.d, a.eps);
          break;
        case LN_GRAD:
          sdc::run_layer_norm_grad(a.out, a.x, a.dy, a.rows, a.d, a.eps);
          break;
        case SOFTMAX:
          sdc::run_softmax(a.out, a.x, a.rows, a.d);
          break;
        default:
          sdc::run_softmax_grad(a.out, a.x, a.dy, a.rows, a.d);
      }
    }
  };
  std::visit(V{}, k);
}

// ---- Node-API: every entry catches every exception and throws a JS Error instead ---------

// Runs `body` (which returns a napi_value or nullptr after throwing); a C++ exception becomes a
// JS Error with the given code. Nothing escapes into Node.
template <class F>
napi_value guarded(napi_env env, const char* entry, F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, "SDC_NATIVE_MEMORY", (std::string("sdc native: ") + entry + ": out of memory").c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, "SDC_NATIVE_ERROR", (std::string("sdc native: ") + entry + ": " + e.what()).c_str());
  } catch (...) {
    napi_throw_error(env, "SDC_NATIVE_ERROR", (std::string("sdc native: ") + entry + ": unknown error").c_str());
  }
  return nullptr;
}

// A failed Node-API call: a JS exception may be pending already, so throw only if none is.
struct NapiFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};
#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) throw NapiFailed("Node-API call failed: " #call); \
  } while (0)

// Like guarded, for the entries: a pending JS exception (from a failed Node-API call) is kept.
template <class F>
napi_value entry(napi_env env, const char* name, F&& body) {
  return guarded(env, name, [&]() -> napi_value {
    try {
      return body();
    } catch (const NapiFailed&) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) return nullptr;
      throw;
    }
  });
}

napi_value throw_type(napi_env env, const char* msg) {
  napi_throw_type_error(env, "SDC_NATIVE_USAGE", msg);
  return nullptr;
}
napi_value throw_error(napi_env env, const char* code, const std::string& msg) {
  napi_throw_error(env, code, msg.c_str());
  return nullptr;
}

// The optional string argument of a getter-setter (isa(level?), workers(placement?)): 1 with it
// in *s, 0 when absent, -1 after throwing a TypeError (`usage`) for any other type. Longer
// strings are cut at 31 bytes (they name nothing either way).
int optional_string(napi_env env, napi_callback_info info, const char* usage, std::string* s) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  napi_valuetype t = napi_undefined;
  if (argc >= 1) CHECK(napi_typeof(env, argv[0], &t));
  if (t == napi_undefined) return 0;
  if (t != napi_string) {
    throw_type(env, usage);
    return -1;
  }
  char buf[32];
  size_t len = 0;
  CHECK(napi_get_value_string_utf8(env, argv[0], buf, sizeof buf, &len));
  *s = std::string(buf, len);
  return 1;
}

// Tags the externals this addon makes, so that another addon's external is never read as a program.
const napi_type_tag PROGRAM_TAG = {0x5dc0a11ce1f0b0a5ULL, 0x9e3779b97f4a7c15ULL};

void finalize_program(napi_env env, void* data, void*) {
  auto* p = static_cast<Program*>(data);
  for (const ArenaRef& a : p->arenas) napi_delete_reference(env, a.ref);
  delete p;
}

// The Program of a build() result, or null after throwing a TypeError.
Program* program_of(napi_env env, napi_value v, const char* usage) {
  napi_valuetype t;
  bool tagged = false;
  void* data = nullptr;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, &PROGRAM_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    throw_type(env, usage);
    return nullptr;
  }
  return static_cast<Program*>(data);
}

// Every arena still the buffer that was decoded: not detached, the same memory and length.
// Throws (a JS Error) and returns false otherwise.
bool check_arenas(napi_env env, Program* prog) {
  for (std::size_t i = 0; i < prog->arenas.size(); i++) {
    const ArenaRef& a = prog->arenas[i];
    napi_value v;
    CHECK(napi_get_reference_value(env, a.ref, &v));
    bool detached = false;
    CHECK(napi_is_detached_arraybuffer(env, v, &detached));
    void* data = nullptr;
    std::size_t bytes = 0;
    if (!detached) CHECK(napi_get_arraybuffer_info(env, v, &data, &bytes));
    if (detached || (bytes == 0 && a.bytes > 0)) {
      throw_error(env, "SDC_NATIVE_ARENA", "sdc native: arena " + std::to_string(i) + " was detached after build (transferred or freed); build the program again");
      return false;
    }
    if (data != a.data || bytes != a.bytes) {
      throw_error(env, "SDC_NATIVE_ARENA", "sdc native: arena " + std::to_string(i) + " changed after build (" + std::to_string(a.bytes) + " bytes, now " + std::to_string(bytes) + "); build the program again");
      return false;
    }
  }
  return true;
}

// Asks the kernel for transparent huge pages over the whole 2 MiB pages inside [p, p + bytes) (THP
// "madvise" mode: none without it): a step streams through hundreds of MiB of arenas in 4 KiB
// pages otherwise (docs/cpu.md: the README job's two-thread step ~2% faster with it; one thread
// unchanged). Advice only: where it is refused or THP is off, nothing changes.
void advise_huge(void* p, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t H = std::uintptr_t(1) << 21;
  const std::uintptr_t a = (reinterpret_cast<std::uintptr_t>(p) + H - 1) & ~(H - 1), e = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(H - 1);
  if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// The GEMM scratch, allocated at the first run (after the caller's memory check saw its size).
void ensure_scratch(Program* prog) {
  if (prog->scratch_floats == 0 || prog->scratch) return;
  prog->scratch.reset(new (std::nothrow) float[static_cast<std::size_t>(prog->scratch_floats)]);
  if (!prog->scratch) throw std::runtime_error("cannot allocate the GEMM scratch (" + std::to_string(prog->scratch_floats * 4) + " bytes)");
  advise_huge(prog->scratch.get(), static_cast<std::size_t>(prog->scratch_floats) * 4);
  for (Kernel& k : prog->kernels)
    if (auto* g = std::get_if<sdc::GemmKernel>(&k)) g->scratch = prog->scratch.get();
}

// Checks done before every run, on the JS thread: the program is idle and its arenas intact.
bool before_run(napi_env env, Program* prog) {
  if (prog->running) {
    throw_error(env, "SDC_NATIVE_BUSY", "sdc native: the program is already running (wait for runAsync to settle)");
    return false;
  }
  if (!check_arenas(env, prog)) return false;
  ensure_scratch(prog);
  return true;
}

// build(program: Float64Array, arenas: ArrayBuffer[]) -> external
napi_value Build(napi_env env, napi_callback_info info) {
  return entry(env, "build", [&]() -> napi_value {
    size_t argc = 2;
    napi_value argv[2];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc < 2) return throw_type(env, "build(program, arenas)");
    bool is_ta = false, is_array = false;
    CHECK(napi_is_typedarray(env, argv[0], &is_ta));
    CHECK(napi_is_array(env, argv[1], &is_array));
    if (!is_array) return throw_type(env, "build: the arenas must be an array of ArrayBuffers");
    uint32_t na;
    CHECK(napi_get_array_length(env, argv[1], &na));
    auto prog = std::make_unique<Program>();
    std::vector<Arena> arenas;
    // the references are released with `prog` if anything below throws
    struct Release {
      napi_env env;
      Program* p;
      ~Release() {
        if (p)
          for (const ArenaRef& a : p->arenas) napi_delete_reference(env, a.ref);
      }
    } release{env, prog.get()};
    for (uint32_t i = 0; i < na; i++) {
      napi_value a;
      CHECK(napi_get_element(env, argv[1], i, &a));
      bool is_ab = false, detached = false;
      CHECK(napi_is_arraybuffer(env, a, &is_ab));
      if (!is_ab) return throw_type(env, ("build: arena " + std::to_string(i) + " is not an ArrayBuffer").c_str());
      CHECK(napi_is_detached_arraybuffer(env, a, &detached));
      if (detached) return throw_type(env, ("build: arena " + std::to_string(i) + " is detached").c_str());
      // a resizable buffer could shrink under a decoded program: refused
      napi_value rz;
      bool resizable = false;
      CHECK(napi_get_named_property(env, a, "resizable", &rz));
      napi_valuetype rt;
      CHECK(napi_typeof(env, rz, &rt));
      if (rt == napi_boolean) CHECK(napi_get_value_bool(env, rz, &resizable));
      if (resizable) return throw_type(env, ("build: arena " + std::to_string(i) + " is a resizable ArrayBuffer (arenas must have a fixed length)").c_str());
      void* p;
      size_t bytes;
      CHECK(napi_get_arraybuffer_info(env, a, &p, &bytes));
      advise_huge(p, bytes);
      arenas.push_back({static_cast<float*>(p), static_cast<std::int64_t>(bytes / 4)});
      napi_ref ref;
      CHECK(napi_create_reference(env, a, 1, &ref));
      prog->arenas.push_back({ref, p, bytes});
    }
    // the program is read in place after the arenas (whose getters may run JS), with no JS after
    napi_typedarray_type type;
    size_t len;
    void* data;
    napi_value ab;
    size_t off;
    if (!is_ta || napi_get_typedarray_info(env, argv[0], &type, &len, &data, &ab, &off) != napi_ok || type != napi_float64_array) return throw_type(env, "build: the program must be a Float64Array");
    if (!data) len = 0;
    Reader r{static_cast<const double*>(data), len, 0, arenas};
    try {
      while (r.i < r.n) {
        r.kernel = prog->kernels.size();
        r.op_name = "?";
        r.field = "op";
        prog->kernels.push_back(decode(r));
      }
    } catch (const BadProgram& e) {
      return throw_error(env, "SDC_NATIVE_PROGRAM", std::string("sdc native: bad program: kernel ") + std::to_string(r.kernel) + " (" + r.op_name + "), field " + r.field + " (word " + std::to_string(r.i > 0 ? r.i - 1 : 0) + "): " + e.what());
    }
    for (const Kernel& k : prog->kernels)
      if (const auto* g = std::get_if<sdc::GemmKernel>(&k)) prog->scratch_floats = std::max(prog->scratch_floats, sdc::gemm_scratch_floats(*g));
    napi_value ext;
    CHECK(napi_create_external(env, prog.get(), finalize_program, nullptr, &ext));
    release.p = nullptr;  // owned by the external from here on
    prog.release();
    CHECK(napi_type_tag_object(env, ext, &PROGRAM_TAG));
    return ext;
  });
}

// scratchBytes(program): bytes of GEMM packing scratch the program allocates at its first run
napi_value ScratchBytes(napi_env env, napi_callback_info info) {
  return entry(env, "scratchBytes", [&]() -> napi_value {
    size_t argc = 1;
    napi_value argv[1];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc < 1) return throw_type(env, "scratchBytes(program)");
    Program* prog = program_of(env, argv[0], "scratchBytes(program): not a program from build()");
    if (!prog) return nullptr;
    napi_value out;
    CHECK(napi_create_double(env, 4.0 * static_cast<double>(prog->scratch_floats), &out));
    return out;
  });
}

// run(program, profile?: Float64Array): runs every kernel; with `profile`, adds its wall seconds per
// kernel (and, when profile has room for 2 per kernel, the calling thread's CPU seconds after them)
napi_value Run(napi_env env, napi_callback_info info) {
  return entry(env, "run", [&]() -> napi_value {
    size_t argc = 2;
    napi_value argv[2];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc < 1) return throw_type(env, "run(program)");
    Program* prog = program_of(env, argv[0], "run(program): not a program from build()");
    if (!prog) return nullptr;
    double* prof = nullptr;
    size_t plen = 0;
    if (argc >= 2) {
      napi_valuetype t;
      CHECK(napi_typeof(env, argv[1], &t));
      if (t != napi_undefined) {
        napi_typedarray_type type;
        napi_value ab;
        size_t off;
        void* pd;
        bool is_ta = false;
        CHECK(napi_is_typedarray(env, argv[1], &is_ta));
        if (!is_ta || napi_get_typedarray_info(env, argv[1], &type, &plen, &pd, &ab, &off) != napi_ok || type != napi_float64_array) return throw_type(env, "run: profile must be a Float64Array");
        prof = pd ? static_cast<double*>(pd) : nullptr;
        if (!prof) plen = 0;
      }
    }
    if (!before_run(env, prog)) return nullptr;
    const size_t nk = prog->kernels.size();
    const bool cpu_too = prof && plen >= 2 * nk;  // [wall seconds..., this thread's CPU seconds...]
    for (size_t i = 0; i < nk; i++) {
      if (prof && i < plen) {
        timespec c0{}, c1{};
        if (cpu_too) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        auto t0 = std::chrono::steady_clock::now();
        run_kernel(prog->kernels[i]);
        prof[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (cpu_too) {
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
          prof[nk + i] += (c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec);
        }
      } else {
        run_kernel(prog->kernels[i]);
      }
    }
    return nullptr;
  });
}

// runAsync(program): a Promise; the kernels run on a libuv worker thread (with the kernels'
// thread team) while JavaScript goes on. The arenas are checked when it starts; the caller must
// not touch (or detach) them until the promise settles, and the program refuses a second run
// meanwhile.
struct AsyncRun {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref program_ref;
  Program* program;
  std::string error;
};

void async_execute(napi_env, void* data) {
  auto* a = static_cast<AsyncRun*>(data);
  try {
    for (const Kernel& k : a->program->kernels) run_kernel(k);
  } catch (const std::exception& e) {
    a->error = std::string("sdc native: runAsync: ") + e.what();
  } catch (...) {
    a->error = "sdc native: runAsync: unknown error";
  }
}

void async_complete(napi_env env, napi_status status, void* data) {
  auto* a = static_cast<AsyncRun*>(data);
  a->program->running = false;
  napi_value undef;
  napi_get_undefined(env, &undef);
  if (status == napi_ok && a->error.empty()) {
    napi_resolve_deferred(env, a->deferred, undef);
  } else {
    napi_value msg, code, err;
    napi_create_string_utf8(env, a->error.empty() ? "sdc native: the run was cancelled" : a->error.c_str(), NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, "SDC_NATIVE_ERROR", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &err);
    napi_reject_deferred(env, a->deferred, err);
  }
  napi_delete_reference(env, a->program_ref);
  napi_delete_async_work(env, a->work);
  delete a;
}

napi_value RunAsync(napi_env env, napi_callback_info info) {
  return entry(env, "runAsync", [&]() -> napi_value {
    size_t argc = 1;
    napi_value argv[1];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc < 1) return throw_type(env, "runAsync(program)");
    Program* prog = program_of(env, argv[0], "runAsync(program): not a program from build()");
    if (!prog) return nullptr;
    if (!before_run(env, prog)) return nullptr;
    auto a = std::make_unique<AsyncRun>();
    a->program = prog;
    napi_value promise, name;
    CHECK(napi_create_string_utf8(env, "sdc.native.run", NAPI_AUTO_LENGTH, &name));
    CHECK(napi_create_reference(env, argv[0], 1, &a->program_ref));
    if (napi_create_async_work(env, nullptr, name, async_execute, async_complete, a.get(), &a->work) != napi_ok) {
      napi_delete_reference(env, a->program_ref);
      throw NapiFailed("napi_create_async_work failed");
    }
    if (napi_create_promise(env, &a->deferred, &promise) != napi_ok || napi_queue_async_work(env, a->work) != napi_ok) {
      napi_delete_async_work(env, a->work);
      napi_delete_reference(env, a->program_ref);
      throw NapiFailed("queuing the run failed");
    }
    prog->running = true;
    a.release();  // async_complete deletes it
    return promise;
  });
}

napi_value Threads(napi_env env, napi_callback_info info) {
  return entry(env, "threads", [&]() -> napi_value {
    size_t argc = 1;
    napi_value argv[1];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc >= 1) {
      napi_valuetype t;
      CHECK(napi_typeof(env, argv[0], &t));
      if (t == napi_number) {
        double n;
        CHECK(napi_get_value_double(env, argv[0], &n));
        if (!(n >= 0 && n <= 1024 && n == std::trunc(n))) {
          napi_throw_range_error(env, "SDC_NATIVE_USAGE", ("threads(n): n must be an integer in [0, 1024] (0: the default, the CPUs this process may use), got " + show(n)).c_str());
          return nullptr;
        }
        sdc::set_threads(static_cast<int>(n));
      } else if (t != napi_undefined) {
        return throw_type(env, "threads(n?: number)");
      }
    }
    napi_value out;
    CHECK(napi_create_int32(env, sdc::threads(), &out));
    return out;
  });
}

napi_value DefaultThreads(napi_env env, napi_callback_info) {
  return entry(env, "defaultThreads", [&]() -> napi_value {
    napi_value out;
    CHECK(napi_create_int32(env, sdc::default_threads(), &out));
    return out;
  });
}

// isa(level?: string): the ISA level the kernels use; with a level, use it (an error when unknown
// or beyond this CPU). isas(): the levels this CPU supports, lowest first.
napi_value Isa(napi_env env, napi_callback_info info) {
  return entry(env, "isa", [&]() -> napi_value {
    std::string name;
    const int given = optional_string(env, info, "isa(level?: string)", &name);
    if (given < 0) return nullptr;
    if (given > 0) {
      const int level = sdc::isa_parse(name);
      const std::string err = level < 0 ? "unknown ISA level '" + name + "' (x86-64, avx2, avx512 or avx512bf16)" : sdc::set_isa(level);
      if (!err.empty()) {
        napi_throw_error(env, "SDC_ISA", err.c_str());
        return nullptr;
      }
    }
    napi_value out;
    CHECK(napi_create_string_utf8(env, sdc::isa_name(sdc::isa_level()), NAPI_AUTO_LENGTH, &out));
    return out;
  });
}

// workers(placement?: "apart" | "anywhere"): where the team's workers run (threads.h); with a
// placement, use it from the next region on. workerMoves(): how often a worker moved off the
// caller's CPU.
napi_value Workers(napi_env env, napi_callback_info info) {
  return entry(env, "workers", [&]() -> napi_value {
    std::string name;
    const int given = optional_string(env, info, "workers(placement?: 'apart' | 'anywhere')", &name);
    if (given < 0) return nullptr;
    if (given > 0) {
      if (name == "apart") sdc::set_placement(sdc::Placement::Apart);
      else if (name == "anywhere") sdc::set_placement(sdc::Placement::Anywhere);
      else {
        napi_throw_error(env, "SDC_NATIVE_USAGE", ("workers(placement): 'apart' or 'anywhere', got '" + name + "'").c_str());
        return nullptr;
      }
    }
    napi_value out;
    CHECK(napi_create_string_utf8(env, sdc::placement() == sdc::Placement::Apart ? "apart" : "anywhere", NAPI_AUTO_LENGTH, &out));
    return out;
  });
}

napi_value WorkerMoves(napi_env env, napi_callback_info) {
  return entry(env, "workerMoves", [&]() -> napi_value {
    napi_value out;
    CHECK(napi_create_double(env, static_cast<double>(sdc::placement_moves()), &out));
    return out;
  });
}

napi_value Isas(napi_env env, napi_callback_info) {
  return entry(env, "isas", [&]() -> napi_value {
    napi_value out;
    CHECK(napi_create_array(env, &out));
    for (int l = 0; l <= sdc::isa_best(); l++) {
      napi_value s;
      CHECK(napi_create_string_utf8(env, sdc::isa_name(l), NAPI_AUTO_LENGTH, &s));
      CHECK(napi_set_element(env, out, l, s));
    }
    return out;
  });
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"build", nullptr, Build, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"runAsync", nullptr, RunAsync, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scratchBytes", nullptr, ScratchBytes, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"defaultThreads", nullptr, DefaultThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"isa", nullptr, Isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"isas", nullptr, Isas, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"workers", nullptr, Workers, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"workerMoves", nullptr, WorkerMoves, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
