// spike_detector.h: rolling z-score of a scalar series against its recent past (metrics.md §1.10; the
// idea of llm.c's llmc/outlier_detector.h, the OLMo 2 "7σ from the rolling average of the previous 1,000
// values" criterion).
//
//   z_t = (x_t − mean(W_t)) / std(W_t),  W_t = the last min(window, t) values before x_t
//
// mean and std are over the previous values only (x_t is added to the window after its z-score is
// computed; llm.c adds it first), std is the population std (divide by |W_t|, as llm.c). Both are
// recomputed from the ring buffer by a shifted two-pass sum in double on every update, oldest value first:
// O(window) per call (≈ 1 µs for 1000), no running sums, so nothing drifts and the result depends only on
// the window's contents. Feed it x = ln(loss) for losses and ln(grad norm) for gradient norms (the caller
// takes the log; the log makes the z-score scale-free and a doubling the same size at any loss level).
//
// Edge cases:
//   - z = NaN while fewer than min_history values are in the window.
//   - std = 0 (a constant window): z = 0 if x equals the mean, +inf if x > mean, −inf if x < mean.
//   - a non-finite x is not added to the window (one NaN would poison the next `window` z-scores);
//     update returns NaN for a NaN x and ±inf for ±inf, once there is enough history, and NaN before.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace attnlab {

class SpikeDetector {
 public:
  explicit SpikeDetector(int window = 1000, int min_history = 100);

  // The z-score of x against the current window, then x joins the window (evicting the oldest value once
  // the window is full). Allocates nothing.
  double update(double x);
  // The z-score update(x) would return, without changing the state.
  double zscore(double x) const;

  int window() const { return window_; }
  int min_history() const { return min_history_; }
  int size() const { return count_; }  // values currently in the window

  // Serialisable state (checkpoints): {format, window, min_history, count, values oldest → newest}.
  std::vector<double> state() const;
  // Restores the values of a state(). This detector keeps its own window and min_history (the run's
  // config wins); if its window is shorter than the saved count, the newest values are kept.
  // Throws std::invalid_argument on a malformed state (it comes from a file).
  void set_state(const std::vector<double>& s);

 private:
  double oldest(int i) const { return buf_[size_t((head_ + i) % window_)]; }  // i-th oldest value

  int window_, min_history_;
  std::vector<double> buf_;  // ring buffer of the last `window_` finite values
  int head_ = 0;             // index of the oldest value
  int count_ = 0;
};

}  // namespace attnlab
