// flight.h: the flight recorder's writer. On an incident (spike, non-finite value) the Monitor asks for
// the current step's full state, which goes to RUN_DIR/flight/step_N.safetensors before anything else
// happens: every activation of every layer ("act.blocks.{l}.{x,norm1,qkv,probs,att,attn_out,resid_mid,
// norm2,pre,act,mlp_out}", "act.final.{x,normf,logits,lse}"), the activation gradients
// ("actgrad.blocks.{l}.{dx,dnorm1,dqkv,dresid_mid,dnorm2}", "actgrad.final.dx"), the parameter gradients
// ("grad.<name>"), the parameters ("<name>") and the batch ("inputs", "targets").
#pragma once
#include <string>

#include "instrument/monitor.h"

namespace attnlab {

class SafetensorsFlightRecorder : public FlightRecorder {
 public:
  explicit SafetensorsFlightRecorder(std::string dir) : dir_(std::move(dir)) {}
  std::string record(int64_t step, const std::string& reason, const Transformer& model) override;

 private:
  std::string dir_;
};

}  // namespace attnlab
