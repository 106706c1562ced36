#include "instrument/spike_detector.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "model/check.h"

namespace attnlab {

namespace {
constexpr double kStateFormat = 1.0;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

SpikeDetector::SpikeDetector(int window, int min_history)
    : window_(window), min_history_(min_history), buf_(size_t(window > 0 ? window : 1), 0.0) {
  ATTNLAB_CHECK(window >= 1 && min_history >= 1 && min_history <= window,
                "SpikeDetector: need 1 <= min_history <= window");
}

double SpikeDetector::zscore(double x) const {
  if (count_ < min_history_) return kNaN;
  if (std::isnan(x)) return kNaN;
  if (std::isinf(x)) return x;
  // Shift by the oldest value before summing: a constant window then gives exactly zero deviations
  // (mean == x, std == 0) instead of rounding noise, and near-constant windows lose no digits.
  // Oldest first: the ring is [head_, head_ + count_) modulo window_, i.e. at most two contiguous runs.
  const double k = oldest(0);
  const int n1 = std::min(count_, window_ - head_), n2 = count_ - n1;
  const double* r1 = buf_.data() + head_;
  const double* r2 = buf_.data();
  double s = 0.0;
  for (int i = 0; i < n1; ++i) s += r1[i] - k;
  for (int i = 0; i < n2; ++i) s += r2[i] - k;
  const double mean = s / count_;
  double ss = 0.0;
  for (int i = 0; i < n1; ++i) ss += ((r1[i] - k) - mean) * ((r1[i] - k) - mean);
  for (int i = 0; i < n2; ++i) ss += ((r2[i] - k) - mean) * ((r2[i] - k) - mean);
  const double sd = std::sqrt(ss / count_);
  const double dev = (x - k) - mean;
  if (sd == 0.0) return dev == 0.0 ? 0.0 : (dev > 0.0 ? kInf : -kInf);
  return dev / sd;
}

double SpikeDetector::update(double x) {
  const double z = zscore(x);
  if (!std::isfinite(x)) return z;
  if (count_ < window_) {
    buf_[size_t((head_ + count_) % window_)] = x;
    ++count_;
  } else {
    buf_[size_t(head_)] = x;  // overwrite the oldest
    head_ = (head_ + 1) % window_;
  }
  return z;
}

std::vector<double> SpikeDetector::state() const {
  std::vector<double> s = {kStateFormat, double(window_), double(min_history_), double(count_)};
  for (int i = 0; i < count_; ++i) s.push_back(oldest(i));
  return s;
}

void SpikeDetector::set_state(const std::vector<double>& s) {
  if (s.size() < 4 || s[0] != kStateFormat) throw std::invalid_argument("SpikeDetector state: unknown format");
  const double n = s[3];
  if (!(n >= 0.0) || n != std::floor(n) || s.size() != 4 + size_t(n))
    throw std::invalid_argument("SpikeDetector state: bad value count");
  for (size_t i = 4; i < s.size(); ++i)
    if (!std::isfinite(s[i])) throw std::invalid_argument("SpikeDetector state: non-finite value");
  const int saved = int(n), keep = saved < window_ ? saved : window_;
  head_ = 0;
  count_ = keep;
  for (int i = 0; i < keep; ++i) buf_[size_t(i)] = s[4 + size_t(saved - keep + i)];
}

}  // namespace attnlab
