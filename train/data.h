// data.h: token streams for training and evaluation. Every batch is a pure function of
// (seed, split, index): nothing is consumed, so the "data position" of a run is just its step, resume
// needs no loader state, and the thread count cannot change which tokens a step sees.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "train/corpus.h"

namespace attnlab {

enum class DataSource : uint8_t {
  kFile,            // any file read as bytes (token = byte value, so vocab >= 256)
  kBigramBackcopy,  // Guo et al. 2024: sparse random bigram chain + trigger tokens that copy back
  kCopy,            // copy / induction: a random segment, then the same segment repeated
  kUniform,         // i.i.d. uniform random tokens (a control: loss cannot go below ln V)
  kCorpus,          // a prepared public-domain prose corpus (corpus.h, `attnlab data get`), read as bytes
  kRecall           // associative recall at a controlled distance: key-value pairs, each key repeated later
};

struct DataConfig {
  DataSource source = DataSource::kBigramBackcopy;
  std::string path;           // kFile: the file to read (a relative path in a config file is relative to that file)
  Corpus corpus = Corpus::kGutenberg;  // kCorpus: which corpus
  std::string corpus_dir;     // kCorpus: the folder `attnlab data get` wrote; empty means default_corpus_dir()
  double val_fraction = 0.1;  // kFile: the last fraction of the file is the validation split; kCorpus: the
                              // last fraction of every book (windows never cross a book or the split)
  bool bos = false;           // put a BOS token at position 0 of every sequence
  int bos_id = -1;            // BOS token id; -1 means vocab - 1 (synthetic tasks then never emit it)
  int bigram_branching = 4;   // kBigramBackcopy: successors per token in the sparse bigram table
  int n_triggers = 3;         // kBigramBackcopy: trigger tokens; the token after a trigger copies the one before it
  int copy_len = 0;           // kCopy: length of the segment that is repeated; 0 means seq_len / 2
  uint64_t data_seed = 0;     // seed of the task's fixed structure (bigram table, triggers); 0 means train.seed
  // kRecall: the first recall_keys content tokens are keys (never filler), the rest are values. A row is
  // uniform random values with recall_pairs pairs planted: `key value` at content positions s, s + 1, and
  // the same key again at q; the token after the second key is the value. The distance d = q - (s + 1)
  // (the query's position minus that of the value it must copy, as in fill_dependencies) is uniform in
  // [recall_min_dist, recall_max_dist] per pair; recall_max_dist 0 means the longest that fits the row.
  int recall_keys = 16;
  int recall_pairs = 4;
  int recall_min_dist = 1;
  int recall_max_dist = 0;
  bool recall_queries_only = false;  // kRecall: only the queries' targets are in the loss (the others are -1)
};

enum class Split : uint8_t { kTrain, kVal };

class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  // Fills inputs[B*T] and targets[B*T] (row-major [B, T]) for batch `index` of `split`. For training,
  // index = step * accum + micro_step; for validation, index = eval batch number. targets[b, t] is the
  // token that follows inputs[b, t]; a target of -1 is ignored by the loss.
  virtual void fill(Split split, uint64_t index, int B, int32_t* inputs, int32_t* targets) const = 0;
  // The same batch (bitwise the same tokens) plus its dependency labels: source[b, t] = the input position
  // p < t of row b whose token targets[b, t] copies (the one token that makes the target predictable), or
  // -1 when the target does not copy a single earlier input. The distance of the dependency is t - p.
  // Sources without copies (file, corpus, uniform) write -1 everywhere: has_dependencies() is false.
  virtual void fill_dependencies(Split split, uint64_t index, int B, int32_t* inputs, int32_t* targets,
                                 int32_t* source) const = 0;
  virtual bool has_dependencies() const { return false; }
  virtual std::string describe() const = 0;  // one line for logs: source, sizes
  // The file the tokens come from (kFile, kCorpus), for run.json; empty path for generated data.
  struct FileInfo {
    std::string path, sha256;
    size_t bytes = 0;
  };
  virtual FileInfo file_info() const { return {}; }
};

// Builds the dataset (reads the file for kFile). Throws DataError naming the file and the problem
// (missing, unreadable, shorter than one sequence, a byte >= vocab).
std::unique_ptr<Dataset> make_dataset(const DataConfig& data, const ModelConfig& model, uint64_t seed);

}  // namespace attnlab
