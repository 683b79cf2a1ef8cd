// CUDA-graph capture of the training step (libcalib_cudagraph.so, built by
// scripts/build-cuda-shims.sh and loaded by calib_train::cuda_graph once CUDA is loaded): a
// handle owns an at::cuda::CUDAGraph and the side stream that warm-up and capture run on, as
// `torch.cuda.graph` does. Errors follow guarded.hpp (messages freed with calib_graph_free_error).

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "guarded.hpp"

#include <cstdlib>
#include <optional>

namespace {

struct Graph {
  at::cuda::CUDAGraph graph;
  // The stream the current thread runs on between calib_graph_enter and calib_graph_leave.
  std::optional<c10::cuda::CUDAStreamGuard> guard;
  std::optional<c10::cuda::CUDAStream> caller;
};

Graph* as_graph(void* g) { return static_cast<Graph*>(g); }

}  // namespace

extern "C" {

int calib_graph_new(void** out, char** err) {
  return calib::guarded(err, [&] { *out = new Graph(); });
}

// Makes a side stream current on this thread, after the work queued so far on the caller's stream.
int calib_graph_enter(void* g, char** err) {
  return calib::guarded(err, [&] {
    Graph* graph = as_graph(g);
    TORCH_CHECK(!graph->guard.has_value(), "calib_graph_enter: already on the side stream");
    auto caller = c10::cuda::getCurrentCUDAStream();
    auto side = c10::cuda::getStreamFromPool();
    c10::cuda::CUDAEvent ready;
    ready.record(caller);
    ready.block(side);
    graph->caller = caller;
    graph->guard.emplace(side);
  });
}

// Back to the caller's stream, which waits for the side stream's work.
int calib_graph_leave(void* g, char** err) {
  return calib::guarded(err, [&] {
    Graph* graph = as_graph(g);
    TORCH_CHECK(graph->guard.has_value(), "calib_graph_leave: not on the side stream");
    auto side = c10::cuda::getCurrentCUDAStream();
    c10::cuda::CUDAEvent done;
    done.record(side);
    graph->guard.reset();
    done.block(*graph->caller);
    graph->caller.reset();
  });
}

// Starts recording what this thread queues on the side stream (call calib_graph_enter first).
int calib_graph_capture_begin(void* g, char** err) {
  return calib::guarded(err, [&] { as_graph(g)->graph.capture_begin(); });
}

int calib_graph_capture_end(void* g, char** err) {
  return calib::guarded(err, [&] { as_graph(g)->graph.capture_end(); });
}

// Launches the recorded work on the current stream.
int calib_graph_replay(void* g, char** err) {
  return calib::guarded(err, [&] { as_graph(g)->graph.replay(); });
}

void calib_graph_free(void* g) { delete as_graph(g); }

void calib_graph_free_error(char* err) { std::free(err); }

}  // extern "C"
