// Node-API glue of the CPU executor: a program (a Float64Array of instructions written by
// runtime/graph/native.ts) is decoded once against its arenas (JS-owned ArrayBuffers), every
// access range checked, and then run as often as asked with no further host work.
#include <node_api.h>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "isa.h"
#include "kernels.h"

namespace {

using sdc::Strided;

enum Op { EW = 1, GEMM = 2, SUM_TO = 3, LN = 4, LN_GRAD = 5, SOFTMAX = 6, SOFTMAX_GRAD = 7, COPY = 8, FILL = 9, ADAM = 10 };

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

using Kernel = std::variant<sdc::EwKernel, sdc::GemmKernel, sdc::SumToKernel, sdc::CopyKernel, sdc::AdamKernel, FillArgs, std::pair<int, LnArgs>>;

struct Arena {
  float* data;
  std::int64_t floats;
};

struct Program {
  std::vector<Kernel> kernels;
  std::vector<napi_ref> refs;
};

struct Reader {
  const double* p;
  std::size_t n, i = 0;
  const std::vector<Arena>& arenas;
  double next() {
    if (i >= n) throw std::runtime_error("program ends early");
    return p[i++];
  }
  std::int64_t int_() {
    double x = next();
    if (x != static_cast<double>(static_cast<std::int64_t>(x))) throw std::runtime_error("expected an integer in the program");
    return static_cast<std::int64_t>(x);
  }
  // pointer fields come first in the encoding, sizes after: read the pair now, check later
  std::pair<std::int64_t, std::int64_t> raw_ptr() {
    std::int64_t a = int_();
    std::int64_t off = int_();
    return {a, off};
  }
  float* resolve(std::pair<std::int64_t, std::int64_t> r, std::int64_t extent, bool nullable = false) {
    if (r.first < 0) {
      if (!nullable) throw std::runtime_error("null pointer in the program");
      return nullptr;
    }
    if (r.first >= static_cast<std::int64_t>(arenas.size())) throw std::runtime_error("arena index out of range");
    if (r.second < 0 || r.second + extent > arenas[r.first].floats) throw std::runtime_error("access outside its arena (offset " + std::to_string(r.second) + " + " + std::to_string(extent) + " > " + std::to_string(arenas[r.first].floats) + ")");
    return arenas[r.first].data + r.second;
  }
  std::vector<std::int64_t> ints(std::int64_t k) {
    std::vector<std::int64_t> v(k);
    for (auto& x : v) x = int_();
    return v;
  }
};

std::int64_t extent_of(const std::vector<std::int64_t>& shape, const std::int64_t* st) {
  std::int64_t e = 0;
  for (std::size_t d = 0; d < shape.size(); d++) {
    if (shape[d] < 1 || st[d] < 0) throw std::runtime_error("bad shape or stride in the program");
    e += (shape[d] - 1) * st[d];
  }
  return e + 1;
}
std::int64_t prod(const std::vector<std::int64_t>& s) {
  std::int64_t p = 1;
  for (auto x : s) p *= x;
  return p;
}

Kernel decode(Reader& r) {
  const std::int64_t op = r.int_();
  switch (op) {
    case EW: {
      sdc::EwKernel k;
      auto out = r.raw_ptr();
      const std::int64_t nd = r.int_();
      if (nd < 1 || nd > 16) throw std::runtime_error("bad rank");
      k.shape = r.ints(nd);
      k.out = r.resolve(out, prod(k.shape));
      const std::int64_t nin = r.int_();
      for (std::int64_t j = 0; j < nin; j++) {
        auto p = r.raw_ptr();
        Strided s;
        s.st = r.ints(nd);
        s.p = r.resolve(p, extent_of(k.shape, s.st.data()));
        k.in.push_back(std::move(s));
      }
      const std::int64_t nc = r.int_();
      int sp = 0, depth = 0;
      for (std::int64_t c = 0; c < nc; c++) {
        sdc::EwCode e;
        e.kind = static_cast<int>(r.int_());
        e.op = static_cast<int>(r.int_());
        e.c = static_cast<float>(r.next());
        if (e.kind == 0) {
          if (e.op < 0 || e.op >= nin) throw std::runtime_error("operand index out of range");
          sp++;
        } else if (e.kind == 1) {
          sp++;
        } else if (e.kind == 2) {
          const int a = sdc::ew_arity(e.op);
          if (a < 0) throw std::runtime_error("unknown elementwise operator " + std::to_string(e.op));
          if (sp < a) throw std::runtime_error("elementwise program underflows");
          sp = sp - a + 1;
        } else {
          throw std::runtime_error("bad elementwise code");
        }
        depth = std::max(depth, sp);
        k.code.push_back(e);
      }
      if (sp != 1) throw std::runtime_error("elementwise program leaves " + std::to_string(sp) + " values");
      k.depth = depth;
      return k;
    }
    case GEMM: {
      sdc::GemmKernel g;
      auto a = r.raw_ptr(), b = r.raw_ptr(), c = r.raw_ptr(), bias = r.raw_ptr();
      g.batch[0] = r.int_();
      g.batch[1] = r.int_();
      g.m = r.int_();
      g.n = r.int_();
      g.k = r.int_();
      g.alpha = static_cast<float>(r.next());
      for (int i = 0; i < 4; i++) g.as[i] = r.int_();
      for (int i = 0; i < 4; i++) g.bs[i] = r.int_();
      for (int i = 0; i < 4; i++) g.cs[i] = r.int_();
      std::vector<std::int64_t> sa = {g.batch[0], g.batch[1], g.m, g.k}, sb = {g.batch[0], g.batch[1], g.k, g.n}, sc = {g.batch[0], g.batch[1], g.m, g.n};
      g.a = r.resolve(a, extent_of(sa, g.as));
      g.b = r.resolve(b, extent_of(sb, g.bs));
      g.c = r.resolve(c, extent_of(sc, g.cs));
      g.bias = r.resolve(bias, g.n, true);
      return g;
    }
    case SUM_TO: {
      sdc::SumToKernel k;
      auto out = r.raw_ptr(), src = r.raw_ptr();
      const std::int64_t nd = r.int_();
      if (nd < 1 || nd > 16) throw std::runtime_error("bad rank");
      k.shape = r.ints(nd);
      k.ost = r.ints(nd);
      k.out_size = r.int_();
      k.scale = static_cast<float>(r.next());
      if (extent_of(k.shape, k.ost.data()) > k.out_size) throw std::runtime_error("sum_to writes outside its output");
      k.out = r.resolve(out, k.out_size);
      k.src = r.resolve(src, prod(k.shape));
      return k;
    }
    case LN:
    case LN_GRAD:
    case SOFTMAX:
    case SOFTMAX_GRAD: {
      LnArgs a{};
      auto out = r.raw_ptr(), x = r.raw_ptr();
      std::pair<std::int64_t, std::int64_t> dy{-1, 0};
      if (op == LN_GRAD || op == SOFTMAX_GRAD) dy = r.raw_ptr();
      a.rows = r.int_();
      a.d = r.int_();
      if (op == LN || op == LN_GRAD) a.eps = static_cast<float>(r.next());
      const std::int64_t n = a.rows * a.d;
      a.out = r.resolve(out, n);
      a.x = r.resolve(x, n);
      if (dy.first >= 0) a.dy = r.resolve(dy, n);
      return std::make_pair(static_cast<int>(op), a);
    }
    case COPY: {
      sdc::CopyKernel k;
      auto dst = r.raw_ptr(), src = r.raw_ptr();
      const std::int64_t nd = r.int_();
      if (nd < 1 || nd > 16) throw std::runtime_error("bad rank");
      k.shape = r.ints(nd);
      k.dst_st = r.ints(nd);
      k.src_st = r.ints(nd);
      k.dst = r.resolve(dst, extent_of(k.shape, k.dst_st.data()));
      k.src = r.resolve(src, extent_of(k.shape, k.src_st.data()));
      return k;
    }
    case FILL: {
      FillArgs f{};
      auto dst = r.raw_ptr();
      f.n = r.int_();
      f.v = static_cast<float>(r.next());
      f.dst = r.resolve(dst, f.n);
      return f;
    }
    case ADAM: {
      sdc::AdamKernel k{};
      auto g = r.raw_ptr(), p = r.raw_ptr(), m = r.raw_ptr(), v = r.raw_ptr(), ema = r.raw_ptr(), hyper = r.raw_ptr(), stats = r.raw_ptr();
      k.n = r.int_();
      k.beta1 = static_cast<float>(r.next());
      k.beta2 = static_cast<float>(r.next());
      k.eps = static_cast<float>(r.next());
      k.wd = static_cast<float>(r.next());
      k.clip = static_cast<float>(r.next());
      k.decoupled = r.int_() != 0;
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
  throw std::runtime_error("unknown instruction " + std::to_string(op));
}

void run_kernel(const Kernel& k) {
  struct V {
    void operator()(const sdc::EwKernel& x) const { sdc::run_ew(x); }
    void operator()(const sdc::GemmKernel& x) const { sdc::run_gemm(x); }
    void operator()(const sdc::SumToKernel& x) const { sdc::run_sum_to(x); }
    void operator()(const sdc::CopyKernel& x) const { sdc::run_copy(x); }
    void operator()(const sdc::AdamKernel& x) const { sdc::run_adam(x); }
    void operator()(const FillArgs& x) const { sdc::run_fill(x.dst, x.n, x.v); }
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

// ---- Node-API ------------------------------------------------------------------------------

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, nullptr, "sdc native: Node-API call failed"); \
      return nullptr;                                                      \
    }                                                                      \
  } while (0)

void finalize_program(napi_env env, void* data, void*) {
  auto* p = static_cast<Program*>(data);
  for (napi_ref r : p->refs) napi_delete_reference(env, r);
  delete p;
}

// build(program: Float64Array, arenas: ArrayBuffer[]) -> external
napi_value Build(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 2) {
    napi_throw_type_error(env, nullptr, "build(program, arenas)");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t len;
  void* data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[0], &type, &len, &data, &ab, &off) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, nullptr, "build: the program must be a Float64Array");
    return nullptr;
  }
  uint32_t na;
  CHECK(napi_get_array_length(env, argv[1], &na));
  auto prog = std::make_unique<Program>();
  std::vector<Arena> arenas;
  for (uint32_t i = 0; i < na; i++) {
    napi_value a;
    CHECK(napi_get_element(env, argv[1], i, &a));
    void* p;
    size_t bytes;
    if (napi_get_arraybuffer_info(env, a, &p, &bytes) != napi_ok) {
      napi_throw_type_error(env, nullptr, "build: arenas must be ArrayBuffers");
      return nullptr;
    }
    arenas.push_back({static_cast<float*>(p), static_cast<std::int64_t>(bytes / 4)});
    napi_ref ref;
    CHECK(napi_create_reference(env, a, 1, &ref));
    prog->refs.push_back(ref);
  }
  Reader r{static_cast<const double*>(data), len, 0, arenas};
  try {
    while (r.i < r.n) prog->kernels.push_back(decode(r));
  } catch (const std::exception& e) {
    for (napi_ref ref : prog->refs) napi_delete_reference(env, ref);
    std::string msg = std::string("sdc native: bad program at ") + std::to_string(r.i) + ": " + e.what();
    napi_throw_error(env, "SDC_NATIVE_PROGRAM", msg.c_str());
    return nullptr;
  }
  napi_value ext;
  Program* raw = prog.release();
  CHECK(napi_create_external(env, raw, finalize_program, nullptr, &ext));
  return ext;
}

// run(program, profile?: Float64Array): runs every kernel; with `profile`, adds its wall seconds per
// kernel (and, when profile has room for 2 per kernel, the calling thread's CPU seconds after them)
napi_value Run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* data;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, nullptr, "run(program)");
    return nullptr;
  }
  auto* prog = static_cast<Program*>(data);
  double* prof = nullptr;
  size_t plen = 0;
  if (argc >= 2) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[1], &t));
    if (t == napi_object) {
      napi_typedarray_type type;
      napi_value ab;
      size_t off;
      void* pd;
      if (napi_get_typedarray_info(env, argv[1], &type, &plen, &pd, &ab, &off) != napi_ok || type != napi_float64_array) {
        napi_throw_type_error(env, nullptr, "run: profile must be a Float64Array");
        return nullptr;
      }
      prof = static_cast<double*>(pd);
    }
  }
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
}

// runAsync(program): a Promise; the kernels run on a libuv worker thread (with the kernels'
// thread team) while JavaScript goes on. The caller must not touch the program's arenas until
// the promise settles.
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
    a->error = e.what();
  }
}

void async_complete(napi_env env, napi_status status, void* data) {
  auto* a = static_cast<AsyncRun*>(data);
  napi_value undef;
  napi_get_undefined(env, &undef);
  if (status == napi_ok && a->error.empty()) {
    napi_resolve_deferred(env, a->deferred, undef);
  } else {
    napi_value msg, err;
    napi_create_string_utf8(env, a->error.empty() ? "sdc native: the run was cancelled" : a->error.c_str(), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &err);
    napi_reject_deferred(env, a->deferred, err);
  }
  napi_delete_reference(env, a->program_ref);
  napi_delete_async_work(env, a->work);
  delete a;
}

napi_value RunAsync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* data;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, nullptr, "runAsync(program)");
    return nullptr;
  }
  auto* a = new AsyncRun{};
  a->program = static_cast<Program*>(data);
  napi_value promise, name;
  CHECK(napi_create_promise(env, &a->deferred, &promise));
  CHECK(napi_create_reference(env, argv[0], 1, &a->program_ref));
  CHECK(napi_create_string_utf8(env, "sdc.native.run", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, nullptr, name, async_execute, async_complete, a, &a->work));
  CHECK(napi_queue_async_work(env, a->work));
  return promise;
}

napi_value Threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc >= 1) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[0], &t));
    if (t == napi_number) {
      int32_t n;
      CHECK(napi_get_value_int32(env, argv[0], &n));
      sdc::set_threads(n);
    }
  }
  napi_value out;
  CHECK(napi_create_int32(env, sdc::threads(), &out));
  return out;
}

napi_value DefaultThreads(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_int32(env, sdc::default_threads(), &out));
  return out;
}

// isa(level?: string): the ISA level the kernels use; with a level, use it (an error when unknown
// or beyond this CPU). isas(): the levels this CPU supports, lowest first.
napi_value Isa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  napi_valuetype t = napi_undefined;
  if (argc >= 1) CHECK(napi_typeof(env, argv[0], &t));
  if (t == napi_string) {
    char buf[32];
    size_t len = 0;
    CHECK(napi_get_value_string_utf8(env, argv[0], buf, sizeof buf, &len));
    const int level = sdc::isa_parse(std::string(buf, len));
    const std::string err = level < 0 ? "unknown ISA level '" + std::string(buf, len) + "' (x86-64, avx2 or avx512)" : sdc::set_isa(level);
    if (!err.empty()) {
      napi_throw_error(env, "SDC_ISA", err.c_str());
      return nullptr;
    }
  }
  napi_value out;
  CHECK(napi_create_string_utf8(env, sdc::isa_name(sdc::isa_level()), NAPI_AUTO_LENGTH, &out));
  return out;
}

napi_value Isas(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_array(env, &out));
  for (int l = 0; l <= sdc::isa_best(); l++) {
    napi_value s;
    CHECK(napi_create_string_utf8(env, sdc::isa_name(l), NAPI_AUTO_LENGTH, &s));
    CHECK(napi_set_element(env, out, l, s));
  }
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"build", nullptr, Build, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"runAsync", nullptr, RunAsync, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"isa", nullptr, Isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"defaultThreads", nullptr, DefaultThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"isas", nullptr, Isas, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
