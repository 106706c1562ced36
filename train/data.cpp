// data.cpp: the datasets behind make_dataset. Every row of every batch draws from its own Rng seeded by
// hash(stream(seed, split), index, row), so batches are pure functions of their coordinates.
#include "train/data.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "model/check.h"
#include "model/rng.h"
#include "train/formats/files.h"
#include "train/formats/sha256.h"

namespace attnlab {
namespace {

// Stream tags: train and validation batches, and the fixed task structure, hash from distinct words.
constexpr uint64_t kTrainTag = 0x7472'6169'6e00'0001ull;
constexpr uint64_t kValTag = 0x7661'6c00'0000'0002ull;
constexpr uint64_t kStructureTag = 0x7374'7275'6374'0003ull;

uint64_t split_stream(uint64_t seed, Split split) {
  return hash_u64(seed, split == Split::kTrain ? kTrainTag : kValTag);
}

Rng row_rng(uint64_t stream, uint64_t index, int row) { return Rng(hash_u64(stream, index, uint64_t(row))); }

std::string format_bytes(double n) {
  char buf[32];
  if (n < 1e3) std::snprintf(buf, sizeof buf, "%.0f B", n);
  else if (n < 1e6) std::snprintf(buf, sizeof buf, "%.1f KB", n / 1e3);
  else if (n < 1e9) std::snprintf(buf, sizeof buf, "%.1f MB", n / 1e6);
  else std::snprintf(buf, sizeof buf, "%.1f GB", n / 1e9);
  return buf;
}

// One row of a batch, addressed by content-token position. The row holds n = T + (bos ? 0 : 1) content
// tokens c[0..n): with BOS, inputs = [BOS, c0 .. c(T-2)] and targets = c; without, inputs = c[0..T) and
// targets = c[1..T]. Writing c[i] to both places keeps targets[t] == inputs[t+1] by construction.
// With a `source` row (fill_dependencies), link(i, j) records that c[i] copies c[j]: source[target
// position of c[i]] = input position of c[j].
class RowView {
 public:
  RowView(int32_t* inputs, int32_t* targets, int T, bool bos, int32_t bos_id, int32_t* source = nullptr)
      : in_(inputs), tg_(targets), src_(source), T_(T), bos_(bos) {
    if (bos_) in_[0] = bos_id;
  }
  int length() const { return bos_ ? T_ : T_ + 1; }
  void put(int i, int32_t tok) {
    if (bos_) {
      tg_[i] = tok;
      if (i + 1 < T_) in_[i + 1] = tok;
    } else {
      if (i < T_) in_[i] = tok;
      if (i >= 1) tg_[i - 1] = tok;
    }
  }
  int32_t get(int i) const { return bos_ ? tg_[i] : (i < T_ ? in_[i] : tg_[T_ - 1]); }
  // Takes c[i] out of the loss: its target becomes -1 (the inputs keep the token). Call after every put.
  void ignore(int i) {
    const int t = bos_ ? i : i - 1;
    if (t >= 0 && t < T_) tg_[t] = -1;
  }
  void link(int i, int j) {
    if (src_ == nullptr) return;
    const int t = bos_ ? i : i - 1, p = bos_ ? j + 1 : j;  // target position of c[i], input position of c[j]
    if (t >= 0 && t < T_ && p >= 0 && p < t) src_[t] = p;
  }

 private:
  int32_t* in_;
  int32_t* tg_;
  int32_t* src_;
  int T_;
  bool bos_;
};

// Shared by the synthetic tasks: K content tokens, which are all ids except the BOS id when BOS is on.
class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(const DataConfig& data, const ModelConfig& model, uint64_t seed)
      : T_(model.seq_len), vocab_(model.vocab), bos_(data.bos), seed_(seed) {
    bos_id_ = data.bos_id < 0 ? model.vocab - 1 : data.bos_id;
    K_ = model.vocab - (bos_ ? 1 : 0);
  }

  void fill(Split split, uint64_t index, int B, int32_t* inputs, int32_t* targets) const override {
    fill_rows(split, index, B, inputs, targets, nullptr);
  }
  void fill_dependencies(Split split, uint64_t index, int B, int32_t* inputs, int32_t* targets,
                         int32_t* source) const override {
    ATTNLAB_CHECK(B >= 0 && source != nullptr, "Dataset::fill_dependencies arguments");
    std::fill(source, source + int64_t(B) * T_, -1);
    fill_rows(split, index, B, inputs, targets, source);
  }

 protected:
  // Writes content indices in [0, K) as token ids, skipping the BOS id.
  int32_t token(int k) const { return bos_ && k >= bos_id_ ? k + 1 : k; }
  int content(int32_t tok) const { return bos_ && tok > bos_id_ ? tok - 1 : tok; }  // token's inverse
  std::string bos_str() const { return bos_ ? "bos " + std::to_string(bos_id_) : "bos off"; }
  // Writes the row's tokens with row.put and, for every target that copies an earlier token, row.link.
  virtual void fill_row(RowView& row, Rng& rng) const = 0;
  void fill_rows(Split split, uint64_t index, int B, int32_t* inputs, int32_t* targets, int32_t* source) const {
    ATTNLAB_CHECK(B >= 0 && inputs != nullptr && targets != nullptr, "Dataset::fill arguments");
    const uint64_t stream = split_stream(seed_, split);
    for (int b = 0; b < B; ++b) {
      RowView row(inputs + int64_t(b) * T_, targets + int64_t(b) * T_, T_, bos_, bos_id_,
                  source ? source + int64_t(b) * T_ : nullptr);
      Rng rng = row_rng(stream, index, b);
      fill_row(row, rng);
    }
  }

  int T_, vocab_;
  bool bos_;
  int32_t bos_id_;
  int K_;
  uint64_t seed_;
};

class UniformDataset : public SyntheticDataset {
 public:
  using SyntheticDataset::SyntheticDataset;
  std::string describe() const override {
    return "uniform: vocab " + std::to_string(vocab_) + ", " + std::to_string(K_) + " content tokens, " + bos_str();
  }

 protected:
  void fill_row(RowView& row, Rng& rng) const override {
    for (int i = 0; i < row.length(); ++i) row.put(i, token(int(rng.below(uint64_t(K_)))));
  }
};

class CopyDataset : public SyntheticDataset {
 public:
  CopyDataset(const DataConfig& data, const ModelConfig& model, uint64_t seed)
      : SyntheticDataset(data, model, seed), len_(data.copy_len > 0 ? data.copy_len : std::max(1, model.seq_len / 2)) {}
  bool has_dependencies() const override { return true; }
  std::string describe() const override {
    return "copy: vocab " + std::to_string(vocab_) + ", segment " + std::to_string(len_) + ", " + bos_str();
  }

 protected:
  void fill_row(RowView& row, Rng& rng) const override {
    for (int i = 0; i < row.length(); ++i) {
      row.put(i, i < len_ ? token(int(rng.below(uint64_t(K_)))) : row.get(i - len_));
      if (i >= len_) row.link(i, i - len_);
    }
  }

 private:
  int len_;
};

// Guo et al. 2024: a sparse random bigram chain over the content tokens, plus trigger tokens after which
// the next token copies the one before the trigger. Successor sets and triggers are fixed by data_seed.
class BigramBackcopyDataset : public SyntheticDataset {
 public:
  BigramBackcopyDataset(const DataConfig& data, const ModelConfig& model, uint64_t seed)
      : SyntheticDataset(data, model, seed), branching_(data.bigram_branching) {
    Rng rng(hash_u64(data.data_seed != 0 ? data.data_seed : seed, kStructureTag));
    // Partial Fisher-Yates over a permutation that is never reset: each draw is still uniform over the
    // elements not yet picked for this token, and the whole table costs O(K * branching).
    std::vector<int32_t> perm(static_cast<size_t>(K_));
    for (int k = 0; k < K_; ++k) perm[size_t(k)] = k;
    is_trigger_.assign(size_t(K_), 0);
    for (int j = 0; j < data.n_triggers; ++j) {
      std::swap(perm[size_t(j)], perm[size_t(j) + rng.below(uint64_t(K_ - j))]);
      is_trigger_[size_t(perm[size_t(j)])] = 1;
      triggers_.push_back(perm[size_t(j)]);
    }
    std::sort(triggers_.begin(), triggers_.end());
    successors_.resize(size_t(K_) * size_t(branching_));
    for (int k = 0; k < K_; ++k) {
      for (int j = 0; j < branching_; ++j) {
        std::swap(perm[size_t(j)], perm[size_t(j) + rng.below(uint64_t(K_ - j))]);
        successors_[size_t(k) * branching_ + j] = perm[size_t(j)];
      }
    }
  }

  bool has_dependencies() const override { return true; }
  std::string describe() const override {
    std::string s = "bigram_backcopy: vocab " + std::to_string(vocab_) + ", branching " +
                    std::to_string(branching_) + ", triggers [";
    for (size_t i = 0; i < triggers_.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(token(triggers_[i]));
    }
    return s + "], " + bos_str();
  }

 protected:
  void fill_row(RowView& row, Rng& rng) const override {
    int before = -1;  // content index two steps back (-1 at the start of the row)
    int prev = int(rng.below(uint64_t(K_)));
    row.put(0, token(prev));
    for (int i = 1; i < row.length(); ++i) {
      int next;
      if (is_trigger_[size_t(prev)] && before >= 0) {
        next = before;  // the copy: only predictable by attending back two positions
        row.link(i, i - 2);
      } else {
        next = successors_[size_t(prev) * branching_ + rng.below(uint64_t(branching_))];
      }
      row.put(i, token(next));
      before = prev;
      prev = next;
    }
  }

 private:
  int branching_;
  std::vector<uint8_t> is_trigger_;    // [K]
  std::vector<int32_t> triggers_;      // sorted content indices
  std::vector<int32_t> successors_;    // [K, branching] content indices
};

// Associative recall at a controlled distance (an induction task, Olsson et al. 2022): filler values, and
// `pairs` planted pairs `k v ... k [v]` (content positions s, s+1, q, q+1) with distinct keys. Keys never
// occur as filler, so each key occurs exactly twice and the token after its second occurrence is only
// predictable by finding the first. The pair's distance d = q - (s + 1), from the query (the second key)
// back to the value it must copy, is drawn first, uniform in [min, max]; then up to 16 starts s, uniform
// over those that fit, until positions s, s+1, q, q+1 are all free (else the pair is dropped: rare when
// 4 · pairs is small against the row).
class RecallDataset : public SyntheticDataset {
 public:
  RecallDataset(const DataConfig& data, const ModelConfig& model, uint64_t seed)
      : SyntheticDataset(data, model, seed), keys_(data.recall_keys), pairs_(data.recall_pairs),
        min_(data.recall_min_dist), queries_only_(data.recall_queries_only) {
    const int n = T_ + (bos_ ? 0 : 1);
    max_ = data.recall_max_dist > 0 ? data.recall_max_dist : n - 3;
  }
  bool has_dependencies() const override { return true; }
  std::string describe() const override {
    return "recall: vocab " + std::to_string(vocab_) + ", " + std::to_string(keys_) + " keys, " +
           std::to_string(K_ - keys_) + " values, " + std::to_string(pairs_) + " pairs per row, distance " +
           std::to_string(min_) + ".." + std::to_string(max_) + (queries_only_ ? ", loss on the queries only, " : ", ") +
           bos_str();
  }

 protected:
  bool is_key(int32_t tok) const { return content(tok) < keys_; }
  bool taken(const RowView& row, int i) const { return is_key(row.get(i)) || (i > 0 && is_key(row.get(i - 1))); }
  bool used(const RowView& row, int32_t key) const {
    for (int i = 0; i < row.length(); ++i)
      if (row.get(i) == key) return true;
    return false;
  }
  void fill_row(RowView& row, Rng& rng) const override {
    const int n = row.length();
    for (int i = 0; i < n; ++i) row.put(i, token(keys_ + int(rng.below(uint64_t(K_ - keys_)))));
    for (int j = 0; j < pairs_; ++j) {
      int32_t key = token(int(rng.below(uint64_t(keys_))));
      for (int tries = 0; tries < 64 && used(row, key); ++tries) key = token(int(rng.below(uint64_t(keys_))));
      if (used(row, key)) continue;
      const int d = min_ + int(rng.below(uint64_t(max_ - min_ + 1)));
      for (int tries = 0; tries < 16; ++tries) {
        const int s = int(rng.below(uint64_t(n - 2 - d))), q = s + 1 + d;  // q + 1 <= n - 1
        if (taken(row, s) || taken(row, s + 1) || taken(row, q) || taken(row, q + 1)) continue;
        row.put(s, key);
        row.put(q, key);
        row.put(q + 1, row.get(s + 1));
        row.link(q + 1, s + 1);
        break;
      }
    }
    if (!queries_only_) return;
    // A query's target follows a key's second occurrence; every other target leaves the loss. Downwards:
    // ignore(i) rewrites the target of c[i], which get() reads (with BOS) only for positions not yet visited.
    for (int i = n - 1; i >= 0; --i) {
      bool query = false;
      if (i >= 1 && is_key(row.get(i - 1)))
        for (int j = 0; j < i - 1 && !query; ++j) query = row.get(j) == row.get(i - 1);
      if (!query) row.ignore(i);
    }
  }

 private:
  int keys_, pairs_, min_, max_;
  bool queries_only_;
};

// Bytes of a file or a prepared corpus. The text is a list of documents (a plain file is one document, a
// corpus one per book); the last val_fraction of every document is validation, the rest training, and a
// window is drawn uniformly over all starts that keep it inside one document's split. For one document
// that is a uniform start in [0, len - window], the same draw as before corpora existed.
class FileDataset : public Dataset {
 public:
  FileDataset(const DataConfig& data, const ModelConfig& model, uint64_t seed)
      : T_(model.seq_len), bos_(data.bos), seed_(seed) {
    bos_id_ = data.bos_id < 0 ? model.vocab - 1 : data.bos_id;
    std::vector<CorpusBook> docs;
    if (data.source == DataSource::kCorpus) {
      const std::string dir = data.corpus_dir.empty() ? default_corpus_dir() : data.corpus_dir;
      const std::string name = corpus_spec(data.corpus).name;
      const CorpusIndex idx = load_corpus(dir, name, &bytes_);
      path_ = corpus_text_path(dir, name);
      sha256_ = idx.sha256;
      docs = idx.books;
      what_ = "corpus " + name + " (" + std::to_string(docs.size()) + (docs.size() == 1 ? " book, " : " books, ");
    } else {
      path_ = data.path;
      read_all();
      sha256_ = sha256_hex(bytes_.data(), bytes_.size());
      docs.push_back({path_, 0, bytes_.size()});
      what_ = "file " + path_ + " (";
    }
    window_ = size_t(T_) + (bos_ ? 0 : 1);
    for (const auto& d : docs) {
      const size_t nv = val_bytes(d.length, data.val_fraction);
      add_segment(&train_, d.offset, d.length - nv);
      add_segment(&val_, d.offset + d.length - nv, nv);
    }
    if (train_.starts == 0 || val_.starts == 0) {
      if (docs.size() == 1) {
        throw DataError(path_ + ": " + std::to_string(bytes_.size()) + " bytes give " + std::to_string(train_.bytes) +
                        " train and " + std::to_string(val_.bytes) + " validation bytes, but seq_len " +
                        std::to_string(T_) + " needs windows of " + std::to_string(window_) +
                        " bytes in each split; with val_fraction " + fraction_str(data.val_fraction) + " " +
                        needed_str(window_, data.val_fraction));
      }
      throw DataError(path_ + ": no book's " + std::string(train_.starts == 0 ? "training" : "validation") +
                      " part holds a window of " + std::to_string(window_) + " bytes (seq_len " + std::to_string(T_) +
                      ", val_fraction " + fraction_str(data.val_fraction) + ")");
    }
    for (size_t i = 0; i < bytes_.size(); ++i) {
      if (int(bytes_[i]) >= model.vocab) {
        throw DataError(path_ + ": byte " + std::to_string(bytes_[i]) + " at offset " + std::to_string(i) +
                        " is not below vocab " + std::to_string(model.vocab));
      }
      if (bos_ && int(bytes_[i]) == bos_id_) {
        throw DataError(path_ + ": byte " + std::to_string(bytes_[i]) + " at offset " + std::to_string(i) +
                        " equals the BOS id " + std::to_string(bos_id_) +
                        "; use a BOS id >= 256 (e.g. vocab 257 with bos_id -1)");
      }
    }
  }

  void fill(Split split, uint64_t index, int B, int32_t* inputs, int32_t* targets) const override {
    ATTNLAB_CHECK(B >= 0 && inputs != nullptr && targets != nullptr, "Dataset::fill arguments");
    const uint64_t stream = split_stream(seed_, split);
    const Segments& seg = split == Split::kTrain ? train_ : val_;
    for (int b = 0; b < B; ++b) {
      RowView row(inputs + int64_t(b) * T_, targets + int64_t(b) * T_, T_, bos_, bos_id_);
      Rng rng = row_rng(stream, index, b);
      const size_t start = seg.start_of(size_t(rng.below(seg.starts)));
      for (int i = 0; i < row.length(); ++i) row.put(i, bytes_[start + size_t(i)]);
    }
  }

  std::string describe() const override {
    std::string s = what_ + format_bytes(double(bytes_.size())) + "; train " + format_bytes(double(train_.bytes)) +
                    ", val " + format_bytes(double(val_.bytes)) + ")";
    return bos_ ? s + ", bos " + std::to_string(bos_id_) : s;
  }

  void fill_dependencies(Split split, uint64_t index, int B, int32_t* inputs, int32_t* targets,
                         int32_t* source) const override {
    ATTNLAB_CHECK(B >= 0 && source != nullptr, "Dataset::fill_dependencies arguments");
    std::fill(source, source + int64_t(B) * T_, -1);  // prose: no target is a known copy
    fill(split, index, B, inputs, targets);
  }

  FileInfo file_info() const override { return {path_, sha256_, bytes_.size()}; }

 private:
  // The byte ranges of one split and, per range, the first window start it owns in the split's numbering.
  struct Segments {
    std::vector<size_t> begin, first;  // first[i] = windows in ranges 0..i-1
    size_t starts = 0, bytes = 0;      // window starts and bytes in all ranges
    size_t start_of(size_t k) const {  // the byte offset of the k-th window start
      const size_t i = size_t(std::upper_bound(first.begin(), first.end(), k) - first.begin()) - 1;
      return begin[i] + (k - first[i]);
    }
  };
  void add_segment(Segments* s, size_t begin, size_t len) {
    s->bytes += len;
    if (len < window_) return;
    s->begin.push_back(begin);
    s->first.push_back(s->starts);
    s->starts += len - window_ + 1;
  }

  static size_t val_bytes(size_t total, double fraction) {
    const double v = std::floor(fraction * double(total));
    return v <= 0 ? 0 : std::min(total, size_t(v));
  }
  static std::string fraction_str(double f) {
    std::ostringstream os;
    os << f;
    return os.str();
  }
  // The smallest file size whose two splits both hold a window, or why there is none.
  static std::string needed_str(size_t window, double f) {
    if (!(f > 0.0) || !(f < 1.0)) return "one of the splits is always empty (val_fraction must be in (0, 1))";
    const double est = std::max(double(window) / f, double(window) / (1.0 - f));
    size_t s = size_t(std::max(0.0, est - 4.0));
    for (int guard = 0; guard < 1000000; ++guard, ++s) {
      const size_t v = val_bytes(s, f);
      if (v >= window && s - v >= window) return "the file needs at least " + std::to_string(s) + " bytes";
    }
    return "the file needs about " + std::to_string(size_t(est)) + " bytes";
  }

  // A regular file only (a FIFO would block, /dev/zero never end), read up to its size at open.
  void read_all() {
    std::string text, why;
    if (!read_regular_file(path_, &text, &why)) throw DataError(path_ + ": cannot read data file: " + why);
    bytes_.assign(text.begin(), text.end());
  }

  std::string path_, sha256_, what_;
  int T_;
  bool bos_;
  int32_t bos_id_;
  uint64_t seed_;
  size_t window_ = 0;
  std::vector<uint8_t> bytes_;
  Segments train_, val_;
};

}  // namespace

std::unique_ptr<Dataset> make_dataset(const DataConfig& data, const ModelConfig& model, uint64_t seed) {
  if (model.seq_len < 1) throw DataError("model.seq_len must be >= 1, got " + std::to_string(model.seq_len));
  if (model.vocab < 2) throw DataError("model.vocab must be >= 2, got " + std::to_string(model.vocab));
  if (data.bos && (data.bos_id < -1 || data.bos_id >= model.vocab)) {
    throw DataError("data.bos_id " + std::to_string(data.bos_id) + " is outside [0, vocab " +
                    std::to_string(model.vocab) + ") (or -1 for vocab - 1)");
  }
  const int K = model.vocab - (data.bos ? 1 : 0);
  switch (data.source) {
    case DataSource::kFile:
    case DataSource::kCorpus:
      return std::make_unique<FileDataset>(data, model, seed);
    case DataSource::kBigramBackcopy:
      if (data.bigram_branching < 1 || data.bigram_branching > K) {
        throw DataError("data.bigram_branching " + std::to_string(data.bigram_branching) + " must be in [1, " +
                        std::to_string(K) + "] (the number of content tokens)");
      }
      if (data.n_triggers < 0 || data.n_triggers > K) {
        throw DataError("data.n_triggers " + std::to_string(data.n_triggers) + " must be in [0, " +
                        std::to_string(K) + "] (the number of content tokens)");
      }
      return std::make_unique<BigramBackcopyDataset>(data, model, seed);
    case DataSource::kCopy:
      if (data.copy_len < 0 || data.copy_len >= model.seq_len + (data.bos ? 0 : 1)) {
        throw DataError("data.copy_len " + std::to_string(data.copy_len) + " leaves nothing to copy within seq_len " +
                        std::to_string(model.seq_len) + " (0 means seq_len / 2)");
      }
      return std::make_unique<CopyDataset>(data, model, seed);
    case DataSource::kUniform:
      return std::make_unique<UniformDataset>(data, model, seed);
    case DataSource::kRecall: {
      const int n = model.seq_len + (data.bos ? 0 : 1);  // content tokens per row
      if (data.recall_keys < 1 || data.recall_keys > K - 2)
        throw DataError("data.recall_keys " + std::to_string(data.recall_keys) + " must be in [1, " +
                        std::to_string(K - 2) + "] (the content tokens minus at least 2 values)");
      if (data.recall_pairs < 1 || data.recall_pairs > data.recall_keys)
        throw DataError("data.recall_pairs " + std::to_string(data.recall_pairs) + " must be in [1, data.recall_keys " +
                        std::to_string(data.recall_keys) + "] (the keys of a row are distinct)");
      if (data.recall_min_dist < 1 || data.recall_min_dist > n - 3)
        throw DataError("data.recall_min_dist " + std::to_string(data.recall_min_dist) + " must be in [1, " +
                        std::to_string(n - 3) + "] (a row of " + std::to_string(n) + " tokens, seq_len " +
                        std::to_string(model.seq_len) + ")");
      if (data.recall_max_dist != 0 && (data.recall_max_dist < data.recall_min_dist || data.recall_max_dist > n - 3))
        throw DataError("data.recall_max_dist " + std::to_string(data.recall_max_dist) + " must be 0 (the longest that fits) or in [" +
                        std::to_string(data.recall_min_dist) + " (data.recall_min_dist), " + std::to_string(n - 3) +
                        "] (a row of " + std::to_string(n) + " tokens, seq_len " + std::to_string(model.seq_len) + ")");
      return std::make_unique<RecallDataset>(data, model, seed);
    }
  }
  throw DataError("unknown data source");
}

}  // namespace attnlab
