// The persistent thread team of threads.h.
//
// A region is published as generation g: its job (fn, ctx, n, chunks) goes in slot g & 1, then
// the counter becomes (g << 32 | 0). Threads claim chunk i by moving the counter from (g, i) to
// (g, i + 1); a claim succeeds only while the counter still holds generation g, so a worker that
// wakes late never runs a chunk of a region that has ended (the slot it read may have been
// rewritten only after the counter moved on). The caller counts finished chunks and returns when
// all are done. Threads that find nothing to do spin ~10 us (between the kernels of one step) and
// then sleep on a condition variable. Workers keep off the caller's CPU as placement() says.
#include "threads.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace sdc {

namespace {

// ---- how many CPUs this process may use ------------------------------------------------------

int affinity_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

// "quota period" of cgroup v2's cpu.max ("max 100000": none); 0 when unlimited or unreadable
double read_cpu_max(const std::string& path) {
  std::ifstream f(path);
  std::string q;
  double period = 0;
  if (!(f >> q >> period) || q == "max" || period <= 0) return 0;
  const double quota = std::atof(q.c_str());
  return quota > 0 ? quota / period : 0;
}
double read_cfs(const std::string& dir) {
  std::ifstream fq(dir + "/cpu.cfs_quota_us"), fp(dir + "/cpu.cfs_period_us");
  double quota = -1, period = 0;
  if (!(fq >> quota) || !(fp >> period) || quota <= 0 || period <= 0) return 0;
  return quota / period;
}

// The smallest CPU quota on the path from this process's cgroup to the root (in CPUs), 0: none.
double cgroup_cpus() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  double best = 0;
  auto take = [&](double q) {
    if (q > 0 && (best == 0 || q < best)) best = q;
  };
  while (std::getline(f, line)) {
    // "0::/path" (v2) or "N:cpu,cpuacct:/path" (v1)
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrl = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    const bool v2 = line.compare(0, a, "0") == 0 && ctrl.empty();
    bool v1cpu = false;
    for (std::size_t s = 0; s <= ctrl.size();) {
      const auto e = std::min(ctrl.find(',', s), ctrl.size());
      if (ctrl.compare(s, e - s, "cpu") == 0) v1cpu = true;
      s = e + 1;
    }
    if (!v2 && !v1cpu) continue;
    const std::string root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/cpu";
    for (;;) {
      if (v2) take(read_cpu_max(root + path + "/cpu.max"));
      else take(read_cfs(root + path));
      if (path.empty() || path == "/") break;
      const auto slash = path.find_last_of('/');
      path = slash == std::string::npos ? std::string() : path.substr(0, slash);
    }
  }
  return best;
}

// ---- the team -------------------------------------------------------------------------------

std::atomic<Placement> g_placement{Placement::Apart};
std::atomic<long> g_moves{0};

#if defined(__linux__)
// Apart: when this worker runs on the caller's CPU, restrict it to `allowed` but that CPU (the
// kernel moves it before the call returns). Measured on the tiny step and on sampling, 2-CPU
// Zen 4, beside one and two busy loops (docs/cpu.md): the moves are rare (3-6 in 63 idle steps,
// ~30 beside a busy loop) and the team then beats one thread where it used to lose.
void keep_apart(int caller_cpu, const cpu_set_t& allowed) {
  if (caller_cpu < 0 || caller_cpu >= CPU_SETSIZE || sched_getcpu() != caller_cpu) return;
  cpu_set_t set = allowed;
  CPU_CLR(caller_cpu, &set);
  if (CPU_COUNT(&set) > 0 && sched_setaffinity(0, sizeof set, &set) == 0) g_moves.fetch_add(1, std::memory_order_relaxed);
}
#endif

struct Job {
  std::atomic<RangeFn> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  std::atomic<std::int64_t> n{0}, chunks{0};
};

// How long an idle thread spins before it sleeps: long enough to catch the next kernel of a step
// (most follow within microseconds), short enough not to hold a core another thread (ours or
// another process's) needs. Measured on the tiny step with other jobs on the machine: 5-20 us
// ran it 1.2-4x faster than 50 us or 1 ms, where the spinning worker starved the caller.
constexpr auto SPIN = std::chrono::microseconds(10);

class Team {
 public:
  ~Team() { resize(0); }

  // the caller's thread count; workers are (re)started when it changes
  void resize(int workers) {
    if (static_cast<int>(pool_.size()) == workers) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : pool_) t.join();
    pool_.clear();
    stop_ = false;
    for (int i = 0; i < workers; i++) pool_.emplace_back([this, i] { worker(i + 1); });
  }

  void run(std::int64_t n, std::int64_t chunks, RangeFn fn, void* ctx) {
    const std::uint32_t g = ++gen_;
    Job& j = jobs_[g & 1];
    j.fn.store(fn, std::memory_order_relaxed);
    j.ctx.store(ctx, std::memory_order_relaxed);
    j.n.store(n, std::memory_order_relaxed);
    j.chunks.store(chunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
#if defined(__linux__)
    caller_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
#endif
    counter_.store(std::uint64_t(g) << 32, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lk(mu_); }
      cv_work_.notify_all();
    }
    work(g, 0);
    // wait for the chunks other threads hold: spin briefly, then sleep
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; done_.load(std::memory_order_acquire) < chunks; i++) {
      cpu_relax();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() - t0 > SPIN) {
        std::unique_lock<std::mutex> lk(mu_);
        main_sleeping_ = true;
        cv_done_.wait(lk, [&] { return done_.load(std::memory_order_acquire) >= chunks; });
        main_sleeping_ = false;
        break;
      }
    }
    // every chunk has ended (the caller's frame, which ctx may point into, is no longer used)
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> lk(mu_);
      std::swap(e, error_);
    }
    if (e) std::rethrow_exception(e);
  }

 private:
  // claim and run chunks of generation g until none is left
  void work(std::uint32_t g, int tid) {
    for (;;) {
      std::uint64_t v = counter_.load(std::memory_order_acquire);
      if (std::uint32_t(v >> 32) != g) return;
      const Job& j = jobs_[g & 1];
      const std::int64_t chunks = j.chunks.load(std::memory_order_relaxed);
      const std::int64_t c = static_cast<std::int64_t>(v & 0xffffffffu);
      if (c >= chunks) return;
      const RangeFn fn = j.fn.load(std::memory_order_relaxed);
      void* ctx = j.ctx.load(std::memory_order_relaxed);
      const std::int64_t n = j.n.load(std::memory_order_relaxed);
      if (!counter_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
      try {
        fn(ctx, n * c / chunks, n * (c + 1) / chunks, tid);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks && tid != 0) {
        bool wake;
        {
          std::lock_guard<std::mutex> lk(mu_);
          wake = main_sleeping_;
        }
        if (wake) cv_done_.notify_one();
      }
    }
  }

  void worker(int tid) {
#if defined(__linux__)
    // the CPUs this worker may use: the caller's set when the team started (threads inherit it)
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    const bool can_move = sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 1;
#endif
    std::uint32_t seen = std::uint32_t(counter_.load() >> 32);
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      std::uint32_t g = seen;
      for (int i = 0; (g = std::uint32_t(counter_.load(std::memory_order_acquire) >> 32)) == seen; i++) {
        cpu_relax();
        if ((i & 63) == 63 && std::chrono::steady_clock::now() - t0 > SPIN) break;
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_work_.wait(lk, [&] { return stop_ || std::uint32_t(counter_.load(std::memory_order_seq_cst) >> 32) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        if (stop_) return;
        g = std::uint32_t(counter_.load(std::memory_order_acquire) >> 32);
      }
      seen = g;
#if defined(__linux__)
      if (can_move && g_placement.load(std::memory_order_relaxed) == Placement::Apart) keep_apart(caller_cpu_.load(std::memory_order_relaxed), allowed);
#endif
      work(g, tid);
    }
  }

  std::vector<std::thread> pool_;
  Job jobs_[2];
  std::atomic<std::uint64_t> counter_{0};
  std::atomic<std::uint32_t> gen_{0};
  std::atomic<std::int64_t> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> caller_cpu_{-1};  // the CPU the caller ran on when it published the region
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::exception_ptr error_;  // the first a chunk threw, rethrown by the caller
  bool main_sleeping_ = false;
  bool stop_ = false;
};

std::mutex g_run_mu;  // one region on the team at a time; also guards resizing it
int g_threads = 0;
Team& team() {
  static Team* t = new Team();  // never destroyed: workers may outlive static destruction order
  return *t;
}
thread_local bool t_in_region = false;

}  // namespace

int default_threads() {
  static const int n = [] {
    int c = affinity_cpus();
    const double q = cgroup_cpus();
    if (q > 0) c = std::min(c, std::max(1, static_cast<int>(std::ceil(q - 1e-9))));
    return std::max(1, c);
  }();
  return n;
}

int threads() {
  if (g_threads <= 0) g_threads = default_threads();
  return g_threads;
}

void set_threads(int n) {
  std::lock_guard<std::mutex> lk(g_run_mu);
  g_threads = n > 0 ? n : default_threads();
}

Placement placement() { return g_placement.load(); }
long placement_moves() { return g_moves.load(); }

void set_placement(Placement p) {
  std::lock_guard<std::mutex> lk(g_run_mu);
  if (g_placement.load() == p) return;
  g_placement.store(p);
  team().resize(0);  // the next region starts new workers, with the caller's affinity
}

void run_chunks(std::int64_t n, std::int64_t chunks, RangeFn fn, void* ctx) {
  if (chunks > 0xffffffffLL) chunks = 0xffffffffLL;
  std::unique_lock<std::mutex> lk(g_run_mu, std::try_to_lock);
  if (chunks <= 1 || t_in_region || !lk.owns_lock() || threads() <= 1) {
    for (std::int64_t c = 0; c < chunks; c++) fn(ctx, n * c / chunks, n * (c + 1) / chunks, 0);
    return;
  }
  Team& t = team();
  t.resize(threads() - 1);
  struct InRegion {
    InRegion() { t_in_region = true; }
    ~InRegion() { t_in_region = false; }
  } in;
  t.run(n, chunks, fn, ctx);
}

}  // namespace sdc
