// The malformed/ corpus: each file opens with "# expect: [file:]line:col:
// text" lines (col may be '*'); loading it must throw a PipelineError whose
// errors are exactly those (one per expect line, each at its position and
// containing its text), in source order.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "dsl/loader.hpp"
#include "test_schema.hpp"

using namespace qerl::dsl;
namespace fs = std::filesystem;

namespace {

struct Expectation {
  std::string file;  // suffix of the diagnostic's file; empty = the loaded file
  int line = 0;
  int column = 0;  // 0 = any
  std::string text;
};

std::vector<Expectation> read_expectations(const fs::path& path) {
  std::vector<Expectation> out;
  std::ifstream in(path);
  std::string line;
  const std::string tag = "# expect: ";
  while (std::getline(in, line)) {
    if (line.rfind(tag, 0) != 0) continue;
    std::string rest = line.substr(tag.size());
    Expectation e;
    if (!std::isdigit(static_cast<unsigned char>(rest[0]))) {
      e.file = rest.substr(0, rest.find(':'));
      rest = rest.substr(rest.find(':') + 1);
    }
    const size_t c1 = rest.find(':'), c2 = rest.find(':', c1 + 1);
    e.line = std::stoi(rest.substr(0, c1));
    const std::string col = rest.substr(c1 + 1, c2 - c1 - 1);
    e.column = col == "*" ? 0 : std::stoi(col);
    e.text = rest.substr(c2 + 2);
    out.push_back(e);
  }
  return out;
}

bool matches(const Diagnostic& d, const Expectation& e, const std::string& loaded) {
  const std::string& want_file = e.file.empty() ? loaded : e.file;
  const bool file_ok = d.pos.file.size() >= want_file.size() &&
                       d.pos.file.compare(d.pos.file.size() - want_file.size(), want_file.size(), want_file) == 0;
  return file_ok && d.pos.line == e.line && (e.column == 0 || d.pos.column == e.column) &&
         d.format().find(e.text) != std::string::npos;
}

}  // namespace

TEST_CASE("every malformed pipeline is rejected with exactly the diagnostics it expects") {
  Schema schema = testing::test_schema();
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(testing::test_dir() + "/malformed"))
    if (entry.path().extension() == ".toml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 15);

  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    CAPTURE(name);
    const std::vector<Expectation> expected = read_expectations(file);
    REQUIRE_MESSAGE(!expected.empty(), "no '# expect:' line");
    std::vector<Diagnostic> errors;
    try {
      load_pipeline(file.string(), {}, schema);
    } catch (const PipelineError& e) {
      for (const Diagnostic& d : e.diagnostics())
        if (d.severity == Severity::error) errors.push_back(d);
      const std::string what = e.what();
      CAPTURE(what);
      for (const Expectation& x : expected) {
        CAPTURE(x.text);
        CHECK(std::any_of(errors.begin(), errors.end(), [&](const Diagnostic& d) { return matches(d, x, name); }));
      }
      CHECK(errors.size() == expected.size());
      for (size_t i = 1; i < errors.size(); ++i) {
        if (errors[i].pos.file != errors[i - 1].pos.file) continue;
        CHECK(std::make_pair(errors[i - 1].pos.line, errors[i - 1].pos.column) <=
              std::make_pair(errors[i].pos.line, errors[i].pos.column));
      }
      continue;
    }
    FAIL_CHECK("loaded without a PipelineError");
  }
}
