// comm_mpi.cpp: the MPI implementation of Comm (train/comm.h), built as the plugin libattnlab_mpi.so and
// loaded by make_comm() only under mpirun. Collectives are the blocking MPI ones (Open MPI picks its tuned
// algorithm by message size and rank count, a fixed choice for a fixed rank count, so results are bitwise
// reproducible); errors are returned (MPI_ERRORS_RETURN) and thrown as CommError. A watchdog thread ends the
// process when one collective has waited longer than ATTNLAB_MPI_TIMEOUT seconds.
#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "train/comm.h"

namespace attnlab {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string mpi_error(int rc) {
  char buf[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(rc, buf, &len);
  return std::string(buf, size_t(len));
}

class MpiComm final : public Comm {
 public:
  MpiComm() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (const char* t = std::getenv("ATTNLAB_MPI_TIMEOUT")) {
      char* end = nullptr;
      const double v = std::strtod(t, &end);
      if (end != t && *end == '\0' && v > 0) timeout_s_ = v;
      else std::fprintf(stderr, "attnlab: rank %d: ignoring ATTNLAB_MPI_TIMEOUT='%s' (seconds > 0 expected)\n", rank_, t);
    }
    char host[MPI_MAX_PROCESSOR_NAME] = {0};
    int len = 0;
    MPI_Get_processor_name(host, &len);
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    MPI_Get_library_version(version, &len);
    std::string v(version, size_t(len));
    if (const size_t nl = v.find_first_of(",\n"); nl != std::string::npos) v.resize(nl);
    // The hosts, gathered once: "2 ranks on h1 (2)".
    std::vector<char> all(size_t(size_) * MPI_MAX_PROCESSOR_NAME, 0);
    MPI_Allgather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR, MPI_COMM_WORLD);
    std::vector<std::pair<std::string, int>> hosts;
    for (int r = 0; r < size_; ++r) {
      const std::string h(all.data() + size_t(r) * MPI_MAX_PROCESSOR_NAME);
      bool seen = false;
      for (auto& [name, n] : hosts)
        if (name == h) ++n, seen = true;
      if (!seen) hosts.push_back({h, 1});
    }
    describe_ = v + ", " + std::to_string(size_) + " ranks on ";
    for (size_t i = 0; i < hosts.size(); ++i)
      describe_ += (i ? ", " : "") + hosts[i].first + " (" + std::to_string(hosts[i].second) + ")";
    watchdog_ = std::thread([this] { watch(); });
  }

  ~MpiComm() override {
    stop_.store(true);
    watchdog_.join();
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return describe_; }

  void allreduce_sum(float* x, int64_t n) override {
    stats_.allreduces++, stats_.allreduce_bytes += n * int64_t(sizeof(float));
    reduce(x, n, MPI_FLOAT, MPI_SUM, "allreduce");
  }
  void allreduce_sum(double* x, int64_t n) override {
    stats_.allreduces++, stats_.allreduce_bytes += n * int64_t(sizeof(double));
    reduce(x, n, MPI_DOUBLE, MPI_SUM, "allreduce");
  }
  void allreduce_max(int64_t* x, int64_t n) override {
    stats_.allreduces++, stats_.allreduce_bytes += n * int64_t(sizeof(int64_t));
    reduce(x, n, MPI_INT64_T, MPI_MAX, "allreduce");
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    stats_.broadcasts++, stats_.broadcast_bytes += bytes;
    const Waiting w(this, "broadcast");
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < bytes;) {  // MPI counts are int
      const int chunk = int(std::min<int64_t>(bytes - off, int64_t(1) << 30));
      check(MPI_Bcast(p + off, chunk, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
      off += chunk;
    }
  }
  void send(const int64_t* x, int n, int dest, int tag) override {
    check(MPI_Send(x, n, MPI_INT64_T, dest, tag, MPI_COMM_WORLD), "send");
  }
  bool poll_recv(int64_t* x, int n, int tag, int* source) override {
    int flag = 0;
    MPI_Status st;
    check(MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &st), "probe");
    if (!flag) return false;
    check(MPI_Recv(x, n, MPI_INT64_T, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "receive");
    *source = st.MPI_SOURCE;
    return true;
  }
  [[noreturn]] void abort(int code) override {
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code);
  }
  void set_context(const std::string& what) override {
    const std::lock_guard<std::mutex> g(mu_);
    context_ = what;
  }

 private:
  // Marks this rank as waiting in a collective, for the watchdog.
  struct Waiting {
    MpiComm* c;
    Waiting(MpiComm* comm, const char* op) : c(comm) {
      c->op_.store(op);
      c->since_.store(now_s());
    }
    ~Waiting() { c->since_.store(0.0); }
  };

  void reduce(void* x, int64_t n, MPI_Datatype type, MPI_Op op, const char* what) {
    const Waiting w(this, what);
    int elem = 0;
    MPI_Type_size(type, &elem);
    auto* p = static_cast<char*>(x);
    for (int64_t off = 0; off < n;) {
      const int chunk = int(std::min<int64_t>(n - off, int64_t(1) << 28));
      check(MPI_Allreduce(MPI_IN_PLACE, p + off * elem, chunk, type, op, MPI_COMM_WORLD), what);
      off += chunk;
    }
  }

  void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    std::string ctx;
    {
      const std::lock_guard<std::mutex> g(mu_);
      ctx = context_;
    }
    throw CommError("rank " + std::to_string(rank_) + ": MPI " + what + (ctx.empty() ? "" : " at " + ctx) +
                    " failed: " + mpi_error(rc));
  }

  void watch() {
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const double since = since_.load();
      if (since == 0.0 || now_s() - since < timeout_s_) continue;
      std::string ctx;
      {
        const std::lock_guard<std::mutex> g(mu_);
        ctx = context_;
      }
      std::fprintf(stderr,
                   "attnlab: rank %d of %d: waited %.0f s in MPI %s%s%s for the other ranks (ATTNLAB_MPI_TIMEOUT=%g); "
                   "another rank is stuck or gone: stopping this one\n",
                   rank_, size_, now_s() - since, op_.load(), ctx.empty() ? "" : " at ", ctx.c_str(), timeout_s_);
      std::fflush(stderr);
      _exit(1);  // not MPI_Abort: this thread may not call MPI (MPI_THREAD_FUNNELED); mpirun ends the job
    }
  }

  int rank_ = 0, size_ = 1;
  std::string describe_;
  double timeout_s_ = 600.0;
  std::atomic<double> since_{0.0};
  std::atomic<const char*> op_{""};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string context_;
  std::thread watchdog_;
};

}  // namespace
}  // namespace attnlab

extern "C" attnlab::Comm* attnlab_mpi_create(int* argc, char*** argv, char* err, int err_len) {
  try {
    int provided = 0;
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
      std::snprintf(err, size_t(err_len), "MPI_Init_thread: %s", attnlab::mpi_error(rc).c_str());
      return nullptr;
    }
    return new attnlab::MpiComm();
  } catch (const std::exception& e) {
    std::snprintf(err, size_t(err_len), "%s", e.what());
    return nullptr;
  }
}
