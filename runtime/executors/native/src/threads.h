// The kernels' thread team: one persistent team of worker threads (the caller is thread 0) that
// takes parallel regions from the kernels. Work is handed out in chunks from a shared counter, so
// a worker the OS has descheduled (another process on the machine) delays a region by at most
// the chunk it holds, and idle workers wait passively (a short spin, then a condition variable),
// leaving the cores to whoever needs them. Kernels must compute every output element the same way
// whichever chunk and thread computes it: results are then bit-identical for any thread count.
#pragma once
#include <cstdint>
#include <type_traits>

namespace sdc {

// The thread count: set_threads(n) (n <= 0: the default), else default_threads().
int threads();
void set_threads(int n);
// The CPUs this process may use: its affinity mask, bounded by its cgroup's CPU quota
// (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us), rounded up; at least 1.
int default_threads();

// Where the workers run. Apart (the default): a worker that finds itself, when a region starts, on
// the CPU the caller last ran on restricts its own affinity to the process's CPUs but that one
// (and so moves), so the OS cannot keep the caller and a worker time-sharing one core while
// another process has the other: with one CPU-bound process beside a 2-CPU team that placement
// made two threads slower than one. Anywhere: the OS alone places them. The caller's thread is
// never moved; results are the same bits either way. A no-op where the OS has no affinity.
enum class Placement { Apart, Anywhere };
Placement placement();
void set_placement(Placement p);
// How many times a worker has moved off the caller's CPU (since the process started).
long placement_moves();

using RangeFn = void (*)(void* ctx, std::int64_t begin, std::int64_t end, int tid);
// fn(ctx, b, e, tid) over `chunks` contiguous, fixed ranges covering [0, n) (chunk c is
// [n * c / chunks, n * (c + 1) / chunks)), on the team; returns when all are done. Runs inline on
// the calling thread when the team is busy (another caller, or a nested region).
void run_chunks(std::int64_t n, std::int64_t chunks, RangeFn fn, void* ctx);

// f(begin, end, tid) over [0, n) split in ranges of at least min_per_thread items (up to 4 per
// thread, for balance when a core is taken); one range on the calling thread when n is small.
template <class F>
inline void parallel_for(std::int64_t n, std::int64_t min_per_thread, F&& f) {
  std::int64_t t = threads();
  if (min_per_thread > 0 && n / min_per_thread < t) t = n / min_per_thread;
  if (t <= 1) {
    if (n > 0) f(std::int64_t(0), n, 0);
    return;
  }
  std::int64_t chunks = 4 * std::int64_t(threads());
  if (min_per_thread > 0 && n / min_per_thread < chunks) chunks = n / min_per_thread;
  if (chunks > n) chunks = n;
  using Fn = typename std::remove_reference<F>::type;
  run_chunks(n, chunks, [](void* c, std::int64_t b, std::int64_t e, int tid) { (*static_cast<Fn*>(c))(b, e, tid); }, const_cast<void*>(static_cast<const void*>(&f)));
}

// f(begin, end, tid) over [0, n) coarse tasks (each worth tens of microseconds or more), each
// claimed on its own while there are at most 16 per thread (a thread that ends its task takes the
// next: the threads end within one task of each other), else as parallel_for(n, 1, f); all on the
// calling thread when `serial`.
template <class F>
inline void parallel_tasks(std::int64_t n, bool serial, F&& f) {
  if (serial || n <= 1 || threads() <= 1 || n > 16 * std::int64_t(threads())) return parallel_for(n, serial ? n : 1, f);
  using Fn = typename std::remove_reference<F>::type;
  run_chunks(n, n, [](void* c, std::int64_t b, std::int64_t e, int tid) { (*static_cast<Fn*>(c))(b, e, tid); }, const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace sdc
