#include "train/comm.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace attnlab {

namespace {

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "1 process"; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void allreduce_max(int64_t*, int64_t) override {}
  void broadcast(void*, int64_t, int) override {}
  void send(const int64_t*, int, int dest, int) override {
    throw CommError("send to rank " + std::to_string(dest) + " in a single-process run");
  }
  bool poll_recv(int64_t*, int, int, int*) override { return false; }
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

std::string plugin_path() {
  if (const char* p = std::getenv("ATTNLAB_MPI_PLUGIN"); p && *p) return p;
  char self[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  const std::filesystem::path exe = n > 0 ? std::string(self, size_t(n)) : std::string(".");
  return (exe.parent_path() / "libattnlab_mpi.so").string();
}

}  // namespace

bool launched_by_mpirun() {
  const char* no = std::getenv("ATTNLAB_NO_MPI");
  if (no && std::string(no) == "1") return false;
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  return size != nullptr && *size != '\0';
}

std::unique_ptr<Comm> make_comm(int* argc, char*** argv) {
  if (!launched_by_mpirun()) return std::make_unique<SingleComm>();
  const std::string path = plugin_path();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);  // GLOBAL: Open MPI loads its own components
  if (!handle)
    throw CommError("started by mpirun, but the MPI plugin " + path + " cannot be loaded (" + dlerror() +
                    "). Build attnlab with MPI (Debian: libopenmpi-dev; CMake finds it and builds "
                    "libattnlab_mpi.so next to the attnlab executable), or set ATTNLAB_MPI_PLUGIN");
  const auto create = reinterpret_cast<MpiCreateFn>(dlsym(handle, "attnlab_mpi_create"));
  if (!create) throw CommError(path + ": no symbol attnlab_mpi_create (not an attnlab MPI plugin?)");
  char err[512] = {0};
  Comm* c = create(argc, argv, err, int(sizeof(err)));
  if (!c) throw CommError(std::string("MPI failed to start: ") + err);
  return std::unique_ptr<Comm>(c);  // the handle stays open: the Comm's code lives in it
}

void broadcast_string(Comm& comm, std::string& s, int root) {
  if (comm.size() == 1) return;
  int64_t n = int64_t(s.size());
  comm.broadcast(&n, sizeof(n), root);
  s.resize(size_t(n));
  if (n > 0) comm.broadcast(s.data(), n, root);
}

}  // namespace attnlab
