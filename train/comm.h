// comm.h: the ranks of a data-parallel run or a distributed sweep.
//
// A process started without mpirun is a Comm of size 1: every collective is the identity and costs nothing.
// Under mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE), make_comm() loads the MPI implementation from the plugin
// libattnlab_mpi.so (train/mpi/comm_mpi.cpp, built when CMake finds MPI) with dlopen, so the attnlab
// executable itself has no run-time dependency on MPI: `ldd attnlab` names no libmpi.
//
// Failure model: MPI errors are returned, not fatal (MPI_ERRORS_RETURN), and become CommError. A rank that
// dies makes mpirun end the job (Open MPI's default) with a message naming the rank. A rank that hangs —
// stopped, or stuck outside MPI — is caught by a watchdog: a rank that has waited in one collective for
// longer than ATTNLAB_MPI_TIMEOUT seconds (default 600) prints which collective and step it waited in and
// exits with status 1, and mpirun ends the job.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace attnlab {

class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What this rank has sent into collectives: a basis for the communication-volume estimate.
struct CommStats {
  int64_t allreduces = 0;       // allreduce calls
  int64_t allreduce_bytes = 0;  // their payload (each rank's input, bytes)
  int64_t broadcasts = 0;
  int64_t broadcast_bytes = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // one line for logs: implementation, ranks, hosts

  // In place, over every rank; every rank gets the same result. For a fixed rank count the reduction
  // order is fixed, so results are bitwise reproducible run to run.
  virtual void allreduce_sum(float* x, int64_t n) = 0;
  virtual void allreduce_sum(double* x, int64_t n) = 0;
  virtual void allreduce_max(int64_t* x, int64_t n) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;

  // Point to point, for the sweep queue: small messages of int64 with a tag.
  virtual void send(const int64_t* x, int n, int dest, int tag) = 0;
  // A waiting message with `tag` from any rank: received into x (n values), *source set; false if none.
  virtual bool poll_recv(int64_t* x, int n, int tag, int* source) = 0;

  // Ends every rank of the job now (MPI_Abort): for a failure on one rank while the others compute, which
  // would otherwise wait for it in the next collective. Print the reason first.
  [[noreturn]] virtual void abort(int code) = 0;

  // What the watchdog names when this rank waits too long ("step 12").
  virtual void set_context(const std::string& what) { (void)what; }

  const CommStats& stats() const { return stats_; }

 protected:
  CommStats stats_;
};

// Size 1 without mpirun (or with ATTNLAB_NO_MPI=1, which the sweep sets for its child runs); the MPI plugin
// under mpirun. Throws CommError when running under mpirun and the plugin cannot be loaded or MPI fails to
// start. argc/argv go to MPI_Init.
std::unique_ptr<Comm> make_comm(int* argc, char*** argv);

// True when this process was started by mpirun as one of several ranks (before make_comm).
bool launched_by_mpirun();

// Broadcasts a string (length, then bytes) from `root`.
void broadcast_string(Comm& comm, std::string& s, int root);

// The C entry point the plugin exports (dlsym name "attnlab_mpi_create"): returns a new Comm or nullptr
// with a message in err.
using MpiCreateFn = Comm* (*)(int* argc, char*** argv, char* err, int err_len);

}  // namespace attnlab
