// The CPU kernels of the static graph executor (runtime/executors/native/native.ts lowers a graph to a
// program of these). Every kernel computes what the reference interpreter (runtime/executors/interp/interp.ts)
// defines; test/graph/native.test.ts checks each one against it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "threads.h"

namespace sdc {

struct Strided {
  const float* p;
  std::vector<std::int64_t> st;  // per dim (0 = broadcast)
};

// ---- elementwise: a postfix program over operands, evaluated in chunks ---------------------
struct EwCode {
  int kind;   // 0 = operand, 1 = constant, 2 = operator
  int op;     // operand index or operator id (ew_ops.inc)
  float c;    // constant
};
struct EwKernel {
  float* out;
  std::vector<std::int64_t> shape;  // collapsed
  std::vector<Strided> in;
  std::vector<EwCode> code;
  int depth;  // stack depth the program needs
};
void run_ew(const EwKernel& k);
// operands of elementwise operator `op` (ew_ops.inc), or -1 for an unknown one
int ew_arity(int op);

// ---- batched strided GEMM: C[b1,b2,m,n] = alpha * sum_k A[b1,b2,m,k] B[b1,b2,k,n] + bias[n] ---
struct GemmKernel {
  const float* a;
  const float* b;
  float* c;
  const float* bias;  // or null
  std::int64_t batch[2], m, n, k;
  float alpha;
  std::int64_t as[4], bs[4], cs[4];
  float* scratch;  // gemm_scratch_floats(*this) floats, owned by the program
  bool bf16;       // A and B rounded to bf16 (nearest even), products accumulated in fp32
};
void run_gemm(const GemmKernel& g);
// floats of packing scratch run_gemm needs (0 when B is read in place), or -1 if that overflows
std::int64_t gemm_scratch_floats(const GemmKernel& g);

// ---- chains: batched kernels run batch by batch (one thread a batch), each batch through every
// step before the next; the steps of a batch touch only what earlier steps wrote for that batch
// (runtime/executors/native/chains.ts). GEMM steps have n > 1; softmax steps rows divisible by nbatch.
struct ChainStep {
  enum Kind { GEMM = 0, SOFTMAX = 1, SOFTMAX_GRAD = 2 };
  int kind;
  GemmKernel g;        // GEMM (batch[0] * batch[1] == nbatch); a bf16 one has scratch of its own
  float* out;          // SOFTMAX, SOFTMAX_GRAD: rows x d
  const float* x;      // its input (SOFTMAX_GRAD: y, the softmax's output)
  const float* dy;     // SOFTMAX_GRAD
  std::int64_t rows, d;
  // a (softmax: x), b (softmax_grad: dy), c (out): where the operand is a chain-local tensor, its
  // offset in the thread's local buffer (one batch of it, batch strides ignored); else -1
  std::int64_t local[3] = {-1, -1, -1};
};
struct ChainKernel {
  std::int64_t nbatch;
  std::vector<ChainStep> steps;
};
// Chain-local tensors (one batch of each, in a thread's buffer of this many floats): written and
// read only by the chain's steps (attention's scores, their gradient), so never stored in memory.
constexpr std::int64_t CHAIN_LOCAL_FLOATS = std::int64_t(1) << 16;
// The most floats of one batch's packed B of a bf16 GEMM step, (n + 31) * (k + 1) at most (a
// thread's buffer; runtime/executors/native/chains.ts keeps larger GEMMs out of chains).
constexpr std::int64_t CHAIN_B_FLOATS = std::int64_t(1) << 16;
void run_chain(const ChainKernel& k);

// ---- reductions, normalization, data movement ----------------------------------------------
struct SumToKernel {
  float* out;
  const float* src;
  std::vector<std::int64_t> shape;   // of src, collapsed
  std::vector<std::int64_t> ost;     // output strides (0 on summed axes)
  std::int64_t out_size;
  float scale;
};
void run_sum_to(const SumToKernel& k);

void run_layer_norm(float* out, const float* x, std::int64_t rows, std::int64_t d, float eps);
void run_layer_norm_grad(float* out, const float* x, const float* dy, std::int64_t rows, std::int64_t d, float eps);
void run_softmax(float* out, const float* x, std::int64_t rows, std::int64_t d);
void run_softmax_grad(float* out, const float* y, const float* dy, std::int64_t rows, std::int64_t d);

struct CopyKernel {
  float* dst;
  const float* src;
  std::vector<std::int64_t> shape, dst_st, src_st;  // collapsed
};
void run_copy(const CopyKernel& k);
void run_fill(float* dst, std::int64_t n, float v);

// ---- convolution windows on channels-last images (the graph's im2col and col2im) -----------
// The image is [B, H, W, C], the columns [B, Ho, Wo, k*k*C]; block (i, j) of column (oh, ow) is
// pixel (oh*stride - pad + i, ow*stride - pad + j) of the image (zero padding outside).
struct WindowKernel {
  float* dst;
  const float* src;
  std::int64_t b, h, w, c, ho, wo, k, stride, pad;
};
void run_im2col(const WindowKernel& k);  // columns (dst) from the image (src)
void run_col2im(const WindowKernel& k);  // the image (dst): each pixel the sum of the column entries taken from it

// ---- optimizer: global gradient norm, clipped Adam / AdamW, EMA over the flat buffers --------
struct AdamKernel {
  float* g;
  float* p;
  float* m;
  float* v;
  float* ema;       // or null
  float* hyper;     // [lr, bc1, bc2sqrt, ema decay]
  float* stats;     // out: [grad norm, clip factor]
  std::int64_t n;
  float beta1, beta2, eps, wd, clip;
  bool decoupled;
};
void run_adam(const AdamKernel& k);

}  // namespace sdc
