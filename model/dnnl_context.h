// dnnl_context.h: owns the oneDNN CPU engine and stream. Built once in main (or a test) and passed by
// reference; there are no engine or stream singletons. oneDNN's global primitive cache stays on, but
// every primitive is created once at plan construction anyway.
#pragma once
#include <dnnl.hpp>

namespace attnlab {

class DnnlContext {
 public:
  DnnlContext() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}
  DnnlContext(const DnnlContext&) = delete;
  DnnlContext& operator=(const DnnlContext&) = delete;
  const dnnl::engine& engine() const { return engine_; }
  dnnl::stream& stream() { return stream_; }

 private:
  dnnl::engine engine_;
  dnnl::stream stream_;
};

}  // namespace attnlab
