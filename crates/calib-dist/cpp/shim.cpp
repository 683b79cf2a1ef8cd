// The C ABI over PyTorch's c10d that calib-dist calls: a TCPStore rendezvous, one process group
// (Gloo, or NCCL when compiled with CALIB_NCCL), and the three collectives the trainer needs.
// Errors follow calib-train's cpp/guarded.hpp (messages freed with the free_error function).
//
// The same file builds twice: statically into calib-dist with Gloo (build.rs), and as the
// shared library libcalib_nccl.so (scripts/build-nccl-shim.sh), which is loaded only once
// libtorch_cuda.so is. The NCCL build names its functions calib_nccl_* so both can coexist.

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#ifdef CALIB_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define CALIB_FN(name) calib_nccl_##name
#else
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define CALIB_FN(name) calib_gloo_##name
#endif

#include "guarded.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

// Waits for a collective. Gloo: the host waits, bounded by the group's timeout. NCCL: the
// current CUDA stream waits for NCCL's, the host does not (a wait with a timeout would block
// the host until the collective ends); NCCL's watchdog enforces the group's timeout.
void finish(const c10::intrusive_ptr<c10d::Work>& work, const Group& group) {
#ifdef CALIB_NCCL
  (void)group;
  work->wait();
#else
  if (!work->wait(group.timeout)) {
    throw std::runtime_error("the collective did not complete within the timeout");
  }
#endif
}

}  // namespace

extern "C" {

// Joins the group: the rank with `serve` set (rank 0, unless torchrun's agent already serves the
// store) serves the TCPStore on host:port, the others connect to it; every rank waits at most
// timeout_ms for the others, at start and in each collective afterwards.
// `iface` (a network interface) or `hostname` (an address of this machine) picks the Gloo
// transport's address; both empty: the address this machine's hostname resolves to.
// `device` is the CUDA device of this rank (NCCL; ignored by Gloo).
int CALIB_FN(init)(const char* host, uint16_t port, int serve, int rank, int world, int64_t timeout_ms, int device,
                   const char* iface, const char* hostname, void** out, char** err) {
  return calib::guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = serve != 0;
    opts.multiTenant = true;
    opts.numWorkers = world;
    opts.waitWorkers = true;
    opts.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
#ifdef CALIB_NCCL
    // NCCL's communicator and barrier use the current device.
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto store = c10::make_intrusive<c10d::PrefixStore>("calib-nccl", tcp);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    (void)iface;
    (void)hostname;
    c10::intrusive_ptr<c10d::Backend> backend =
        c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#else
    (void)device;
    auto store = c10::make_intrusive<c10d::PrefixStore>("calib-gloo", tcp);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (iface != nullptr && *iface != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (hostname != nullptr && *hostname != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    c10::intrusive_ptr<c10d::Backend> backend =
        c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
#endif
    *out = new Group{tcp, backend, timeout};
  });
}

// Sums `tensor` (a tch tensor pointer, at::Tensor*) over the ranks, in place.
int CALIB_FN(all_reduce_sum)(void* group, void* tensor, char** err) {
  return calib::guarded(err, [&] {
    auto& g = *static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    finish(g.backend->allreduce(tensors, opts), g);
  });
}

// Replaces `tensor` with rank `root`'s, in place.
int CALIB_FN(broadcast)(void* group, void* tensor, int root, char** err) {
  return calib::guarded(err, [&] {
    auto& g = *static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    finish(g.backend->broadcast(tensors, opts), g);
  });
}

int CALIB_FN(barrier)(void* group, char** err) {
  return calib::guarded(err, [&] {
    auto& g = *static_cast<Group*>(group);
    finish(g.backend->barrier(c10d::BarrierOptions()), g);
  });
}

// Leaves the group: shut down normally, aborted after a failed collective (NCCL then tears its
// communicators down without waiting for peers; for Gloo both are no-ops, and its destructor
// joins its threads, which return within the timeout).
void CALIB_FN(destroy)(void* group, int failed) {
  auto* g = static_cast<Group*>(group);
  try {
    if (failed) {
      g->backend->abort();
    } else {
      g->backend->shutdown();
    }
  } catch (...) {
  }
  delete g;
}

void CALIB_FN(free_error)(char* err) { std::free(err); }

}  // extern "C"
