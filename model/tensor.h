// tensor.h: non-owning views over float memory. Layers take views; arenas own the memory.
// A MatView is row-major with an explicit row stride (in floats), so a column block of a wider
// matrix (for example the q part of a fused qkv buffer) is a view too.
#pragma once
#include <cstddef>
#include <cstdint>

#include "model/check.h"

namespace attnlab {

struct VecView {
  float* p = nullptr;
  int64_t n = 0;
  float& operator[](int64_t i) const { return p[i]; }
};

struct ConstVecView {
  const float* p = nullptr;
  int64_t n = 0;
  ConstVecView() = default;
  ConstVecView(const float* p_, int64_t n_) : p(p_), n(n_) {}
  ConstVecView(VecView v) : p(v.p), n(v.n) {}  // NOLINT: implicit on purpose
  const float& operator[](int64_t i) const { return p[i]; }
};

struct MatView {
  float* p = nullptr;
  int rows = 0, cols = 0;
  int64_t stride = 0;  // floats between consecutive rows; == cols when dense
  MatView() = default;
  MatView(float* p_, int rows_, int cols_) : p(p_), rows(rows_), cols(cols_), stride(cols_) {}
  MatView(float* p_, int rows_, int cols_, int64_t stride_) : p(p_), rows(rows_), cols(cols_), stride(stride_) {}
  float* row(int r) const { return p + int64_t(r) * stride; }
  float& operator()(int r, int c) const { return p[int64_t(r) * stride + c]; }
  // Columns [c0, c0+n) of every row.
  MatView col_block(int c0, int n) const { return MatView(p + c0, rows, n, stride); }
  bool dense() const { return stride == cols; }
  int64_t size() const { return int64_t(rows) * cols; }
};

struct ConstMatView {
  const float* p = nullptr;
  int rows = 0, cols = 0;
  int64_t stride = 0;
  ConstMatView() = default;
  ConstMatView(const float* p_, int rows_, int cols_) : p(p_), rows(rows_), cols(cols_), stride(cols_) {}
  ConstMatView(const float* p_, int rows_, int cols_, int64_t stride_)
      : p(p_), rows(rows_), cols(cols_), stride(stride_) {}
  ConstMatView(MatView m) : p(m.p), rows(m.rows), cols(m.cols), stride(m.stride) {}  // NOLINT
  const float* row(int r) const { return p + int64_t(r) * stride; }
  const float& operator()(int r, int c) const { return p[int64_t(r) * stride + c]; }
  ConstMatView col_block(int c0, int n) const { return ConstMatView(p + c0, rows, n, stride); }
  bool dense() const { return stride == cols; }
  int64_t size() const { return int64_t(rows) * cols; }
};

inline bool same_shape(ConstMatView a, ConstMatView b) { return a.rows == b.rows && a.cols == b.cols; }

}  // namespace attnlab
