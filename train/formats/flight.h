// flight.h: the flight recorder's writer. On an incident (spike, non-finite value) the Monitor asks for
// the current step's state, which goes to RUN_DIR/flight/step_N.safetensors before anything else happens.
// Always: the parameters ("<name>"), the parameter gradients ("grad.<name>"), the batch ("inputs",
// "targets") and every row's log-sum-exp of the logits ("act.final.lse") — with the config, enough to
// recompute every activation of the step exactly. FlightContents::kDiagnosis (the default) adds, for the
// first `seqs` sequences, what a diagnosis reads first: every layer's input stream
// ("act.blocks.{l}.x", massive activations, token norms), attention map ("act.blocks.{l}.probs") and input
// gradient ("actgrad.blocks.{l}.dx", gradient sinks), plus "act.final.x" and "actgrad.final.dx".
// kEverything writes every activation and activation gradient of the whole batch instead
// ("act.blocks.{l}.{x,norm1,qkv,probs,att,attn_out,resid_mid,norm2,pre,act,mlp_out}",
// "act.final.{x,normf,logits}", "actgrad.blocks.{l}.{dx,dnorm1,dqkv,dresid_mid,dnorm2}", "actgrad.final.dx").
// Metadata: format, step, reason, contents ("diagnosis" | "everything"), seqs (sequences in the act.* and
// actgrad.* tensors).
#pragma once
#include <string>

#include "instrument/monitor.h"

namespace attnlab {

class SafetensorsFlightRecorder : public FlightRecorder {
 public:
  explicit SafetensorsFlightRecorder(std::string dir, FlightContents contents = FlightContents::kDiagnosis,
                                     int seqs = 4)
      : dir_(std::move(dir)), contents_(contents), seqs_(seqs) {}
  std::string record(int64_t step, const std::string& reason, const Transformer& model) override;

 private:
  std::string dir_;
  FlightContents contents_;
  int seqs_;
};

}  // namespace attnlab
