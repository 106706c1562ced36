// taps.h: the only instrumentation-facing type the model knows about (style.md §2.4, tier 3).
// Values the model keeps in its arenas are read after the pass through Transformer's accessors; a tap
// exposes a *transient* value (one that is overwritten before the pass ends) right after the kernel
// that produced it. Off costs one null check per tap site. The view is valid only during observe().
#pragma once
#include <cstdint>

#include "model/tensor.h"

namespace attnlab {

enum class Tap : uint8_t {
  kAttnScores,  // pre-softmax attention logits of one layer, [B*H*T, T], scaled by 1/sqrt(d_head) (and by 1/τ
                // inside an attention-temperature window, model/TOGGLES.md); entries above the diagonal are
                // undefined (forward, before softmax overwrites them)
  kLogits,      // output logits [B*T, vocab] (forward; the buffer is later overwritten by its gradient)
  kCount
};
enum class Pass : uint8_t { kForward, kBackward };

class TapObserver {
 public:
  virtual ~TapObserver() = default;
  virtual bool wants(Tap t, int layer, Pass p) const = 0;  // asked first; false means zero work
  virtual void observe(Tap t, int layer, Pass p, ConstMatView v) = 0;
};

}  // namespace attnlab
