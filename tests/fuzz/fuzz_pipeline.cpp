// libFuzzer entry point: arbitrary bytes as a pipeline file. Lines
// "#set key=value" (TOML comments) also become --set overrides, so the
// override parser is fuzzed too. Properties checked on every input: only
// qerl::Error escapes (anything else crashes the fuzzer), no sanitizer
// finding, and a pipeline that loads reloads from its to_toml unchanged.
// `extends` resolves inside a private temp folder holding a few bases, so
// input cannot make the loader read other files.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.hpp"
#include "dsl/explain.hpp"
#include "dsl/loader.hpp"
#include "test_schema.hpp"

namespace fs = std::filesystem;
using namespace qerl::dsl;

namespace {

void write(const fs::path& path, const char* text) { std::ofstream(path) << text; }

// The sandbox for `extends`: a fresh temp folder with bases worth reaching.
LoadOptions make_sandbox() {
  char pattern[] = "/tmp/qerl-fuzz-XXXXXX";
  const char* dir = mkdtemp(pattern);
  if (!dir) std::abort();
  const fs::path root(dir);
  fs::create_directories(root / "sub");
  write(root / "base.toml",
        "[model]\npath = \"m\"\n[aqn]\ntargets = [\"x\"]\n[stages.d]\nuses = \"data\"\n"
        "[stages.r]\nuses = \"reward\"\ninputs = { samples = \"d.prompts\" }\n");
  write(root / "loop.toml", "extends = \"loop.toml\"\n");
  write(root / "sub" / "mid.toml", "extends = \"../base.toml\"\n[run]\nsteps = 7\n");
  write(root / "bad.toml", "[run\n");
  static std::string keep = root.string();
  std::atexit([] { std::error_code ec; fs::remove_all(keep, ec); });
  LoadOptions options;
  options.extends_root = root.string();
  return options;
}

Overrides overrides_in(const std::string& text) {
  Overrides out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (text.compare(start, 5, "#set ") == 0) out.push_back(text.substr(start + 5, end - start - 5));
    start = end + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Schema schema = testing::test_schema();
  static const LoadOptions sandbox = make_sandbox();
  const std::string text(reinterpret_cast<const char*>(data), size);

  try {
    PipelineSpec spec = load_pipeline_text(text, "fuzz.toml", overrides_in(text), schema, sandbox);
    const std::string resolved = to_toml(spec, schema);
    PipelineSpec again = load_pipeline_text(resolved, "fuzz.toml", {}, schema, sandbox);
    if (to_toml(again, schema) != resolved) {
      std::fprintf(stderr, "to_toml round trip differs:\n%s\n", resolved.c_str());
      std::abort();
    }
  } catch (const PipelineError& e) {
    if (e.diagnostics().empty()) std::abort();  // an error must say what is wrong
  } catch (const qerl::Error&) {
  }

  try {
    explain(schema, text.substr(0, text.find('\n')));
  } catch (const qerl::Error&) {
  }
  return 0;
}
