// qerl-scan: layer-wise quantization sensitivity of an HF checkpoint. For
// every Linear weight (minus ignores) and every scheme (NVFP4, MXFP4) it
// prints the weight's SQNR, relative error, deadzone and saturation, and the
// relative error of the logits on seeded calibration prompts when only that
// weight is fake-quantized; then the most sensitive layers and a model-wide
// summary per scheme. --json writes the same data atomically. A model with a
// NaN or infinite weight, or whose calibration logits are not finite, is an
// error naming the tensor or layer (exit 2), never a table of NaNs.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "common/atomic_file.hpp"
#include "common/error.hpp"
#include "models/nn/non_finite.hpp"
#include "models/nn/weights.hpp"
#include "tools/scan/layer_scan.hpp"
#include "tools/tool_errors.hpp"

namespace fs = std::filesystem;
using namespace qerl;
using namespace qerl::tools;

namespace {

constexpr int64_t calibration_length = 32;  // tokens per calibration prompt
using tools::exit_bad_input;
using tools::exit_internal_error;

struct Options {
  std::string dir;
  std::string schemes = "nvfp4,mxfp4";
  std::vector<std::string> ignores;
  int64_t prompts = 8;
  uint64_t seed = 0;
  std::string json_out;
  int64_t top = 10;
};

struct SchemeResult {
  std::optional<std::string> skipped;  // why this scheme could not quantize the weight
  QuantErrorStats stats;
  OutputError output;
};

struct LayerResult {
  std::string name;  // module name; the parameter is name + ".weight"
  std::vector<int64_t> shape;
  std::optional<int64_t> routed_tokens;  // experts only
  std::vector<SchemeResult> schemes;     // parallel to the scanned schemes
};

struct ScanReport {
  std::vector<QuantScheme> schemes;
  std::vector<LayerResult> layers;
  std::vector<std::string> ignored;
  std::vector<std::string> ignore_patterns;
  std::vector<int64_t> logits_shape;  // [N, S, V]
  int64_t prompt_length = 0;
};

std::vector<QuantScheme> parse_scheme_list(const std::string& text) {
  std::vector<QuantScheme> schemes;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (item.empty()) continue;
    const QuantScheme scheme = parse_scheme(item);
    if (std::find(schemes.begin(), schemes.end(), scheme) == schemes.end()) schemes.push_back(scheme);
  }
  if (schemes.empty()) throw Error("--schemes: empty list (known: nvfp4, mxfp4)");
  return schemes;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "x" : "") + std::to_string(shape[i]);
  return out;
}

// The scheme the ranking uses: NVFP4 when scanned, else the first one.
size_t ranking_scheme(const ScanReport& report) {
  for (size_t s = 0; s < report.schemes.size(); ++s)
    if (report.schemes[s] == QuantScheme::nvfp4) return s;
  return 0;
}

ScanReport run_scan(const Options& opt) {
  if (!fs::is_directory(opt.dir)) throw Error(opt.dir + ": no such folder");
  if (opt.prompts < 1) throw Error("--prompts: " + std::to_string(opt.prompts) + " given, expected >= 1");
  if (opt.top < 0) throw Error("--top: " + std::to_string(opt.top) + " given, expected >= 0");
  ScanReport report;
  report.schemes = parse_scheme_list(opt.schemes);
  report.ignore_patterns = default_scan_ignores();
  report.ignore_patterns.insert(report.ignore_patterns.end(), opt.ignores.begin(), opt.ignores.end());

  models::CausalLM lm = models::load_causal_lm(opt.dir);  // config's dtype, CPU, eval mode
  // A NaN or infinite weight makes every statistic below meaningless.
  if (const auto finding = models::find_non_finite_parameter(*lm)) throw Error(opt.dir + ": " + *finding);
  ScanSelection selection = select_scan_targets(*lm, opt.ignores);
  for (const auto& pattern : selection.unmatched)
    std::fprintf(stderr, "qerl-scan: warning: --ignore pattern \"%s\" matched no Linear module\n", pattern.c_str());
  if (selection.targets.empty()) {
    throw Error(opt.dir + (selection.ignored.empty() ? ": the model has no Linear module"
                                                     : ": every Linear module is ignored, nothing to scan"));
  }
  report.ignored = selection.ignored;

  const auto& config = lm->config();
  report.prompt_length = config.max_position_embeddings > 0
                             ? std::min(calibration_length, config.max_position_embeddings)
                             : calibration_length;
  CalibrationRun calibration(*lm, calibration_prompts(config.vocab_size, opt.prompts, report.prompt_length, opt.seed));
  report.logits_shape = {opt.prompts, report.prompt_length, config.vocab_size};

  for (ScanTarget& target : selection.targets) {
    LayerResult layer;
    layer.name = target.module_name;
    layer.shape = target.weight.sizes().vec();
    layer.routed_tokens = calibration.routed_tokens(target.module_name);
    for (QuantScheme scheme : report.schemes) {
      SchemeResult result;
      result.skipped = unsupported_reason(target.weight, scheme);
      if (!result.skipped) {
        const FakeQuantized fake = fake_quantize_with_stats(target.weight, scheme);
        result.stats = fake.stats;
        result.output = calibration.with_replaced(target.weight, fake.weight);
        if (!std::isfinite(result.output.relative_l2) || !std::isfinite(result.output.mean_kl))
          throw Error(opt.dir + ": layer " + target.module_name + " fake-quantized with " + scheme_name(scheme) +
                      " makes the calibration logits NaN or infinite");
      }
      layer.schemes.push_back(std::move(result));
    }
    report.layers.push_back(std::move(layer));
  }
  return report;
}

// One scheme's five cells (40 characters), or "skipped" centred in them.
std::string scheme_cells(const SchemeResult& r) {
  char buffer[128];
  if (r.skipped) {
    std::snprintf(buffer, sizeof buffer, " %-39s", "   (skipped)");
  } else {
    std::snprintf(buffer, sizeof buffer, " %7.2f %7.4f %6.2f %6.2f %9.3e", r.stats.sqnr_db(),
                  r.stats.relative_error(), 100.0 * r.stats.deadzone_fraction(),
                  100.0 * r.stats.saturation_fraction(), r.output.relative_l2);
  }
  return buffer;
}

void print_table(const ScanReport& report, bool moe) {
  size_t name_width = 5;
  for (const auto& layer : report.layers) name_width = std::max(name_width, layer.name.size());
  const auto pad = [](std::string text, size_t width) {
    if (text.size() < width) text.append(width - text.size(), ' ');
    return text;
  };
  std::string lead = pad("", name_width) + "  " + pad("", 9) + (moe ? pad("", 7) : "");
  std::string head = pad("layer", name_width) + "  " + pad("shape", 9) + (moe ? pad("tokens", 7) : "");
  for (QuantScheme scheme : report.schemes) {
    const std::string title = std::string("-- ") + scheme_name(scheme) + " ";
    lead += " |" + title + std::string(40 - title.size(), '-');
    head += " | SQNR dB rel err dead %  sat %   out err";
  }
  std::cout << lead << "\n" << head << "\n";
  for (const auto& layer : report.layers) {
    std::string row = pad(layer.name, name_width) + "  " + pad(shape_text(layer.shape), 9);
    if (moe) row += pad(layer.routed_tokens ? std::to_string(*layer.routed_tokens) : "-", 7);
    for (const auto& r : layer.schemes) row += " |" + scheme_cells(r);
    row.erase(row.find_last_not_of(' ') + 1);
    std::cout << row << "\n";
  }
}

void print_skipped(const ScanReport& report) {
  bool any = false;
  for (const auto& layer : report.layers)
    for (size_t s = 0; s < report.schemes.size(); ++s)
      if (layer.schemes[s].skipped) {
        if (!any) std::cout << "\nskipped:\n";
        any = true;
        std::cout << "  " << layer.name << " (" << scheme_name(report.schemes[s])
                  << "): " << *layer.schemes[s].skipped << "\n";
      }
}

void print_ranking(const ScanReport& report, int64_t top) {
  if (top == 0) return;
  const size_t s = ranking_scheme(report);
  std::vector<const LayerResult*> ranked;
  for (const auto& layer : report.layers)
    if (!layer.schemes[s].skipped) ranked.push_back(&layer);
  std::stable_sort(ranked.begin(), ranked.end(), [s](const LayerResult* a, const LayerResult* b) {
    return a->schemes[s].output.relative_l2 > b->schemes[s].output.relative_l2;
  });
  const size_t shown = std::min(ranked.size(), static_cast<size_t>(top));
  std::cout << "\nmost sensitive layers (relative L2 error of the logits under " << scheme_name(report.schemes[s])
            << ", top " << shown << " of " << ranked.size() << "):\n";
  for (size_t i = 0; i < shown; ++i) {
    const SchemeResult& r = ranked[i]->schemes[s];
    char buffer[512];
    std::snprintf(buffer, sizeof buffer, "  %3zu  %-44s out err %9.3e  KL %9.3e  SQNR %6.2f dB\n", i + 1,
                  ranked[i]->name.c_str(), r.output.relative_l2, r.output.mean_kl, r.stats.sqnr_db());
    std::cout << buffer;
  }
}

struct SchemeSummary {
  QuantErrorStats totals;  // element-weighted over the scanned weights
  int64_t weights = 0;
  int64_t skipped = 0;
  double mean_output = 0, max_output = 0;
  int64_t unrouted = 0;  // experts that received no calibration token (output error 0)
};

SchemeSummary summarize(const ScanReport& report, size_t s) {
  SchemeSummary summary;
  for (const auto& layer : report.layers) {
    const SchemeResult& r = layer.schemes[s];
    if (r.skipped) {
      ++summary.skipped;
      continue;
    }
    ++summary.weights;
    summary.totals += r.stats;
    summary.mean_output += r.output.relative_l2;
    summary.max_output = std::max(summary.max_output, r.output.relative_l2);
    if (layer.routed_tokens && *layer.routed_tokens == 0) ++summary.unrouted;
  }
  if (summary.weights > 0) summary.mean_output /= static_cast<double>(summary.weights);
  return summary;
}

void print_summary(const ScanReport& report) {
  std::cout << "\n";
  for (size_t s = 0; s < report.schemes.size(); ++s) {
    const SchemeSummary m = summarize(report, s);
    if (m.weights == 0) {
      std::cout << "summary " << scheme_name(report.schemes[s]) << ": no weight scanned (" << m.skipped
                << " skipped)\n";
      continue;
    }
    char buffer[512];
    std::snprintf(buffer, sizeof buffer,
                  "summary %s: %lld weights (%lld skipped), %lld elements: relative L2 %.4f, SQNR %.2f dB, "
                  "deadzone %.2f %%, saturation %.2f %%; logits error mean %.3e, max %.3e\n",
                  scheme_name(report.schemes[s]), static_cast<long long>(m.weights),
                  static_cast<long long>(m.skipped), static_cast<long long>(m.totals.elements),
                  m.totals.relative_error(), m.totals.sqnr_db(), 100.0 * m.totals.deadzone_fraction(),
                  100.0 * m.totals.saturation_fraction(), m.mean_output, m.max_output);
    std::cout << buffer;
    if (m.unrouted > 0)
      std::cout << "  note: " << m.unrouted
                << " expert weight(s) got no calibration token, so their logits error is 0; use more --prompts\n";
  }
}

nlohmann::json stats_json(const QuantErrorStats& stats) {
  // An exact weight has SQNR +inf, which JSON writes as null.
  return {{"elements", stats.elements},
          {"sqnr_db", stats.sqnr_db()},
          {"relative_error", stats.relative_error()},
          {"deadzone", stats.deadzone_fraction()},
          {"saturation", stats.saturation_fraction()},
          {"deadzone_count", stats.deadzone},
          {"nonzero_count", stats.nonzero},
          {"saturated_count", stats.saturated}};
}

nlohmann::json report_json(const Options& opt, const ScanReport& report) {
  nlohmann::json out;
  out["model"] = opt.dir;
  out["calibration"] = {{"prompts", opt.prompts},
                        {"prompt_length", report.prompt_length},
                        {"seed", opt.seed},
                        {"tokens", "random ids, uniform over the vocabulary"},
                        {"logits_shape", report.logits_shape}};
  out["ignore"] = report.ignore_patterns;
  out["ignored"] = report.ignored;
  for (QuantScheme scheme : report.schemes) out["schemes"].push_back(scheme_name(scheme));
  out["layers"] = nlohmann::json::array();
  for (const auto& layer : report.layers) {
    nlohmann::json entry{{"name", layer.name}, {"weight", layer.name + ".weight"}, {"shape", layer.shape}};
    entry["routed_tokens"] = layer.routed_tokens ? nlohmann::json(*layer.routed_tokens) : nlohmann::json();
    for (size_t s = 0; s < report.schemes.size(); ++s) {
      const SchemeResult& r = layer.schemes[s];
      nlohmann::json scheme;
      if (r.skipped) {
        scheme["skipped"] = *r.skipped;
      } else {
        scheme = stats_json(r.stats);
        scheme["output_relative_error"] = r.output.relative_l2;
        scheme["output_kl"] = r.output.mean_kl;
      }
      entry["schemes"][scheme_name(report.schemes[s])] = scheme;
    }
    out["layers"].push_back(entry);
  }
  for (size_t s = 0; s < report.schemes.size(); ++s) {
    const SchemeSummary m = summarize(report, s);
    nlohmann::json summary = stats_json(m.totals);
    if (m.weights == 0) summary["sqnr_db"] = summary["relative_error"] = nullptr;  // nothing measured
    summary["weights"] = m.weights;
    summary["skipped"] = m.skipped;
    summary["mean_output_relative_error"] = m.mean_output;
    summary["max_output_relative_error"] = m.max_output;
    out["summary"][scheme_name(report.schemes[s])] = summary;
  }
  out["ranking_scheme"] = scheme_name(report.schemes[ranking_scheme(report)]);
  return out;
}

void write_json(const Options& opt, const ScanReport& report) {
  const fs::path target = opt.json_out;
  std::error_code failed;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), failed);
  if (failed) throw Error("--json " + opt.json_out + ": cannot create its folder: " + failed.message());
  write_file_atomically(target, report_json(opt, report).dump(2) + "\n");
}

int run(const Options& opt) {
  const ScanReport report = run_scan(opt);
  const bool moe = std::any_of(report.layers.begin(), report.layers.end(),
                               [](const LayerResult& l) { return l.routed_tokens.has_value(); });
  std::cout << "qerl-scan " << opt.dir << ": " << report.layers.size() << " Linear weights scanned, "
            << report.ignored.size() << " ignored; calibration " << opt.prompts << " x " << report.prompt_length
            << " random token ids (seed " << opt.seed << ")\n\n";
  print_table(report, moe);
  print_skipped(report);
  print_ranking(report, opt.top);
  print_summary(report);
  if (!opt.json_out.empty()) write_json(opt, report);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "qerl-scan: layer-wise NVFP4 / MXFP4 quantization sensitivity of an HF checkpoint.\n"
      "Per Linear weight and scheme: SQNR, relative L2 error, deadzone (nonzero weights that become 0),\n"
      "saturation (elements at E2M1 magnitude 6), and the relative L2 error of the final logits when only\n"
      "that weight is fake-quantized. Calibration prompts are random token ids (uniform over the\n"
      "vocabulary, seeded); a tokenizer in the folder is not used. NVFP4 uses each weight's own global\n"
      "scale (fused siblings such as q/k/v are not made to share one); MXFP4 the compressed-tensors rule."};
  Options opt;
  app.add_option("MODEL_DIR", opt.dir, "HF checkpoint folder (config.json + safetensors)")->required();
  app.add_option("--schemes", opt.schemes, "comma-separated: nvfp4, mxfp4")->capture_default_str();
  app.add_option("--ignore", opt.ignores,
                 "extra Linear modules to skip: exact name or re:<regex> (anchored at the start); repeatable. "
                 "Always ignored: lm_head, re:.*mlp\\.gate$, re:.*shared_expert_gate$");
  app.add_option("--prompts", opt.prompts, "calibration prompts (each 32 random token ids)")->capture_default_str();
  app.add_option("--seed", opt.seed, "seed of the calibration prompts")->capture_default_str();
  app.add_option("--json", opt.json_out, "also write the results to this JSON file (atomically)");
  app.add_option("--top", opt.top, "most sensitive layers to list (0 = none)")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return tools::report_errors("qerl-scan", [&] { return run(opt); });
}
