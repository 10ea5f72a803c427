// qerl-model: inspect and exercise an HF checkpoint folder with qerl's own
// model code. info (architecture, parameter counts, dtypes), logits (one
// sequence -> safetensors with logits [T, V] float32 and, for MoE, routing
// [T, L_moe, K] int16), generate, tokenize, init (random HF-style weights)
// and convert (load + save). The parity tests drive it against transformers.
// Bad input (config, tokens, NaN logits) is one line and exit 2.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "models/generate/generator.hpp"
#include "models/io/safetensors.hpp"
#include "models/nn/non_finite.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/compressed_tensors.hpp"
#include "models/tokenizer/char_level.hpp"
#include "models/tokenizer/tokenizer.hpp"
#include "common/atomic_file.hpp"
#include "tools/tool_errors.hpp"

namespace fs = std::filesystem;
using namespace qerl;
using namespace qerl::models;

namespace {

struct Options {
  std::string dir;
  std::string dtype;                // empty = the checkpoint's
  std::vector<std::string> tokens;  // "1,2,3" per sequence
  std::vector<std::string> prompts;
  std::string text;
  std::string out;
  std::string config;
  uint64_t seed = 0;
  GenerationConfig generation;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json = false;
  std::vector<std::string> specials;
};

std::vector<int64_t> parse_token_list(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("--tokens: \"" + item + "\" is not an integer");
    }
  }
  if (ids.empty()) throw Error("--tokens: empty list");
  return ids;
}

CausalLM load(const Options& opt) {
  LoadOptions load_options;
  if (!opt.dtype.empty()) load_options.dtype = parse_dtype(opt.dtype);
  return load_model_folder(opt.dir, load_options).lm;  // a compressed-tensors folder: its dequantized codes
}

std::optional<Tokenizer> maybe_tokenizer(const std::string& dir) {
  const fs::path path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(path)) return std::nullopt;
  return Tokenizer::from_file(path);
}

Tokenizer require_tokenizer(const std::string& dir) {
  auto tokenizer = maybe_tokenizer(dir);
  if (!tokenizer) throw Error(dir + ": no tokenizer.json (use --tokens)");
  return *tokenizer;
}

int cmd_info(const Options& opt) {
  CausalLM lm = load(opt);
  const auto& config = lm->config();
  const auto count = count_parameters(*lm);
  std::map<std::string, int64_t> dtypes;
  for (const auto& p : lm->parameters()) dtypes[dtype_name(p.scalar_type())] += p.numel();
  std::cout << "architecture      " << architecture_name(config.architecture) << "\n"
            << "layers            " << config.num_hidden_layers << " (" << config.num_moe_layers() << " MoE)\n"
            << "hidden / heads    " << config.hidden_size << " / " << config.num_attention_heads << " q, "
            << config.num_key_value_heads << " kv, head_dim " << config.head_dim << "\n"
            << "vocab             " << config.vocab_size << (config.tie_word_embeddings ? " (tied lm_head)" : "")
            << "\n";
  if (config.is_moe())
    std::cout << "experts           " << config.num_experts << ", top-" << config.num_experts_per_tok
              << (config.norm_topk_prob ? ", renormalized" : "")
              << (config.shared_expert_intermediate_size > 0 ? ", shared expert" : "") << "\n";
  std::cout << "parameters        " << count.total << " total, " << count.active << " active per token\n";
  for (const auto& [name, n] : dtypes) std::cout << "dtype             " << name << ": " << n << "\n";
  return 0;
}

// Refuses what the model cannot score before loading its weights: ids
// outside the vocabulary, more tokens than max_position_embeddings.
void check_sequence(const std::vector<int64_t>& ids, const ModelConfig& config, const std::string& config_file) {
  for (int64_t id : ids)
    if (id < 0 || id >= config.vocab_size)
      throw Error("--tokens: id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(config.vocab_size) + ")");
  const auto count = static_cast<int64_t>(ids.size());
  if (config.max_position_embeddings > 0 && count > config.max_position_embeddings)
    throw Error("--tokens: " + std::to_string(count) + " tokens exceed max_position_embeddings " +
                std::to_string(config.max_position_embeddings) + " of " + config_file);
}

int cmd_logits(const Options& opt) {
  if (opt.tokens.size() != 1) throw Error("logits: give exactly one --tokens list");
  const auto ids = parse_token_list(opt.tokens.front());
  const std::string config_file = (fs::path(opt.dir) / "config.json").string();
  check_sequence(ids, load_model_config(config_file), config_file);
  CausalLM lm = load(opt);
  torch::NoGradGuard no_grad;
  ForwardArgs args;
  args.input_ids = torch::tensor(ids, torch::kLong).unsqueeze(0);
  args.routing = Routing::capture();
  auto out = lm->forward(args);
  const torch::Tensor logits = out.logits[0].to(torch::kFloat).contiguous();  // [T, V] float32
  // NaN logits are no result: say so, and where they come from when a weight holds them.
  if (const auto finding = non_finite_values("logits", logits)) {
    const auto weight = find_non_finite_parameter(*lm);
    throw Error(opt.dir + ": " + *finding +
                (weight ? "; the weights hold NaN or infinities, first " + *weight
                        : "; every weight is finite, the " + dtype_name(lm->dtype()) + " forward pass produced them"));
  }
  TensorMap tensors{{"logits", logits}};
  if (out.routing.indices.defined()) tensors["routing"] = out.routing.indices[0].contiguous();  // [T, L_moe, K] int16
  write_safetensors(opt.out, tensors);
  return 0;
}

int cmd_generate(Options opt) {
  CausalLM lm = load(opt);
  auto tokenizer = maybe_tokenizer(opt.dir);
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& t : opt.tokens) prompts.push_back(parse_token_list(t));
  for (const auto& text : opt.prompts) {
    if (!tokenizer) throw Error(opt.dir + ": no tokenizer.json (use --tokens)");
    const auto ids = tokenizer->encode(text);
    prompts.emplace_back(ids.begin(), ids.end());
  }
  if (prompts.empty()) throw Error("generate: give --prompt or --tokens");
  auto& gen = opt.generation;
  const auto& config = lm->config();
  if (!opt.ignore_eos) gen.stop.eos_token_ids = generation_eos_token_ids(opt.dir, config);
  gen.pad_token_id = config.pad_token_id.value_or(config.eos_token_ids.empty() ? 0 : config.eos_token_ids.front());
  gen.stop.stop_strings = opt.stop;
  if (tokenizer) {
    gen.stop.decode = [tok = *tokenizer](const std::vector<int64_t>& ids) {
      return tok.decode(std::vector<TokenId>(ids.begin(), ids.end()));
    };
  }
  const auto rows = generate(*lm, prompts, gen);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    std::string text;
    if (tokenizer) text = gen.stop.decode(row.tokens);
    if (opt.json) {
      nlohmann::json line{{"prompt_tokens", prompts[i]},
                          {"tokens", row.tokens},
                          {"logprobs", row.logprobs},
                          {"finish_reason", finish_reason_name(row.finish_reason)}};
      if (tokenizer) line["text"] = text;
      std::cout << line.dump() << "\n";
    } else if (tokenizer) {
      std::cout << text << "\n";
    } else {
      for (size_t j = 0; j < row.tokens.size(); ++j) std::cout << (j ? "," : "") << row.tokens[j];
      std::cout << "\n";
    }
  }
  return 0;
}

int cmd_tokenize(const Options& opt) {
  const auto ids = require_tokenizer(opt.dir).encode(opt.text);
  for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? "," : "") << ids[i];
  std::cout << "\n";
  return 0;
}

int cmd_init(const Options& opt) {
  const ModelConfig config = load_model_config(opt.config);
  CausalLM lm(config);
  init_weights(*lm, opt.seed);
  lm->to(opt.dtype.empty() ? config.dtype : parse_dtype(opt.dtype));
  save_causal_lm(opt.out, *lm);
  return 0;
}

int cmd_convert(const Options& opt) {
  CausalLM lm = load(opt);
  save_causal_lm(opt.out, *lm);
  return 0;
}

// tokenizer.json of the character-level vocabulary (byte ids, then the
// special tokens) and a tokenizer_config.json naming the first special as
// EOS and pad: the tiny model's tokenizer.
int cmd_char_tokenizer(const Options& opt) {
  if (opt.specials.empty()) throw Error("char-tokenizer: give at least one --special (the first is EOS)");
  fs::create_directories(opt.out);
  write_file_atomically(fs::path(opt.out) / "tokenizer.json", char_level_tokenizer_json(opt.specials));
  const nlohmann::json config{{"eos_token", opt.specials.front()}, {"pad_token", opt.specials.front()},
                              {"tokenizer_class", "PreTrainedTokenizerFast"}};
  write_file_atomically(fs::path(opt.out) / "tokenizer_config.json", config.dump(2) + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qerl-model: inspect, score, generate with and create qerl/HF checkpoints"};
  app.require_subcommand(1);
  Options opt;
  auto add_dir = [&](CLI::App* cmd) {
    cmd->add_option("dir", opt.dir, "HF checkpoint folder")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--dtype", opt.dtype, "compute dtype: float32, bfloat16, float16 (default: the checkpoint's)");
  };
  auto* info = app.add_subcommand("info", "architecture, parameter counts, dtypes");
  add_dir(info);
  auto* logits = app.add_subcommand("logits", "logits (and MoE routing) of one sequence -> safetensors");
  add_dir(logits);
  logits->add_option("--tokens", opt.tokens, "comma-separated token ids")->required();
  logits->add_option("--out", opt.out, "output .safetensors file")->required();
  auto* gen = app.add_subcommand("generate", "sample continuations of prompts");
  add_dir(gen);
  gen->add_option("--prompt", opt.prompts, "prompt text (needs tokenizer.json); repeatable");
  gen->add_option("--tokens", opt.tokens, "prompt as comma-separated token ids; repeatable");
  gen->add_option("--max-new-tokens", opt.generation.max_new_tokens, "tokens to generate at most");
  gen->add_option("--temperature", opt.generation.sampling.temperature, "0 = greedy")->capture_default_str();
  gen->add_option("--top-p", opt.generation.sampling.top_p, "nucleus mass")->capture_default_str();
  gen->add_option("--top-k", opt.generation.sampling.top_k, "0 = off")->capture_default_str();
  gen->add_option("--seed", opt.generation.seed, "sampling seed")->capture_default_str();
  gen->add_option("--stop", opt.stop, "stop string; repeatable");
  gen->add_flag("--ignore-eos", opt.ignore_eos, "do not stop at EOS");
  gen->add_flag("--json", opt.json, "one JSON line per prompt (tokens, logprobs, finish_reason)");
  auto* tok = app.add_subcommand("tokenize", "text -> token ids");
  tok->add_option("dir", opt.dir, "folder with tokenizer.json")->required()->check(CLI::ExistingDirectory);
  tok->add_option("--text", opt.text, "text to encode")->required();
  auto* init = app.add_subcommand("init", "random-init checkpoint for a config.json");
  init->add_option("--config", opt.config, "config.json")->required()->check(CLI::ExistingFile);
  init->add_option("--out", opt.out, "output folder")->required();
  init->add_option("--seed", opt.seed, "init seed")->capture_default_str();
  init->add_option("--dtype", opt.dtype, "stored dtype (default: the config's)");
  auto* chars = app.add_subcommand("char-tokenizer", "write a character-level tokenizer.json + tokenizer_config.json");
  chars->add_option("--out", opt.out, "output folder")->required();
  chars->add_option("--special", opt.specials, "special token, after the 256 byte ids; repeatable (first = EOS)");
  auto* convert = app.add_subcommand("convert", "load a checkpoint and save it in qerl's layout");
  add_dir(convert);
  convert->add_option("--out", opt.out, "output folder")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return tools::report_errors("qerl-model", [&] {
    if (*info) return cmd_info(opt);
    if (*logits) return cmd_logits(opt);
    if (*gen) return cmd_generate(opt);
    if (*tok) return cmd_tokenize(opt);
    if (*init) return cmd_init(opt);
    if (*convert) return cmd_convert(opt);
    if (*chars) return cmd_char_tokenizer(opt);
    return 0;
  });
}
