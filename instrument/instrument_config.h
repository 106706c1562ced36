// instrument_config.h: what the Monitor measures, how often, and when it warns. Decoded from the
// `instrument:` section of a run config (train/config/config.cpp). Defaults follow shared/docs/metrics.md.
#pragma once
#include <cstdint>

namespace attnlab {

enum class OnIncident : uint8_t { kContinue, kStop };
// What a flight record holds (instrument/docs/README.md "Flight recorder", sizes per record there).
enum class FlightContents : uint8_t {
  kDiagnosis,   // parameters, parameter gradients, the batch, per-row log-sum-exp; for the first flight_seqs
                // sequences every layer's input stream, attention map and input gradient
  kEverything   // every activation and activation gradient of the whole batch, besides the above
};

struct InstrumentConfig {
  bool enabled = true;           // master switch; false = no metric beyond loss/lr/grad norm, no probes
  // Cadence.
  int step_every = 10;           // per-tensor gradient/update and output-logit statistics (spike z: every step)
  int probe_every = 50;          // full probe (forward+backward on the fixed probe batch); 0 disables
  int dense_until = 200;         // probe every dense_every steps up to this step (early dynamics)
  int dense_every = 10;
  bool probe_at_init = false;    // also probe the initial model, before the first update, as step 0
  // Families measured at probes.
  bool attention = true;         // entropy, logits, sinks, attention rank (instrument/docs/attention.md)
  bool residual = true;          // rank collapse, token norms, massive activations, lazy layers
  bool gradients = true;         // gradient sink, ∇q/∇k/∇v by position, Bloat/Change/Compress, depth
  bool weights = true;           // QK eigenspectrum, spectral norms, weight RMS
  bool tensor_stats = true;      // per-tensor gradient and update statistics at the step cadence
  uint64_t probe_seed = 0;       // which validation batch is the probe batch (index); fixed for the run
  // Early warnings (events.jsonl and the progress line). A threshold of 0 disables that warning.
  double warn_entropy = 0.05;    // a head's normalised entropy below this: entropy collapse (Zhai et al.)
  double warn_logit = 100.0;     // max attention logit above this: logit growth (pilot: healthy 6–20)
  double warn_spike_z = 7.0;     // z-score of ln(loss) or ln(grad norm) above this: spike (OLMo 2)
  double warn_grad_norm = 1e3;   // global pre-clip gradient norm above this: gradient explosion
  double warn_grad_vanish = 1e-7;  // global gradient norm below this: vanishing gradients
  // Depth profile (metrics.md §1.8): ρ_grad = grad_depth_ratio_params (block 0 / block L−1 parameter-gradient
  // norm, gradients family) above warn_depth_ratio at every probe for warn_depth_window steps: gradient
  // explosion toward the input (grad_explosion); below 1/warn_depth_ratio as long: vanishing (grad_vanishing).
  double warn_depth_ratio = 10.0;  // one order of magnitude between the first and the last block
  int warn_depth_window = 100;     // steps the ratio must stay beyond it (first to last probe of the streak)
  double warn_tok_cos = 0.95;    // mean token cosine of a layer's output above this: rank collapse
  double warn_sink = 0.3;        // a head's α_0 above this: attention sink has emerged (Gu et al. ε)
  double warn_mass_ratio = 100.0;  // top-1 |activation| / median above this: massive activation
  int spike_window = 1000;       // rolling window of the spike detectors
  int spike_min_history = 100;   // no spike z-score before this many steps
  // Flight recorder: on a spike or a non-finite value, dump the step's state to flight/step_N.safetensors.
  bool flight_recorder = true;
  FlightContents flight_contents = FlightContents::kDiagnosis;
  int flight_seqs = 4;           // kDiagnosis: sequences 0..flight_seqs-1 of the batch (at most the batch)
  OnIncident on_spike = OnIncident::kContinue;  // after a spike's dump: keep training or stop
};

}  // namespace attnlab
