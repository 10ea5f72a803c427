// The extends chain: each file may name one base (`extends = "base.toml"`,
// relative to the file), bases may extend further; a cycle, a missing file or
// a base outside the sandbox is an error at the extends key. The merged tree
// keeps each value's position in the file that provided it.
#include "dsl/detail/read_document.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qerl::dsl::detail {

namespace fs = std::filesystem;

namespace {

constexpr size_t max_chain = 16;                  // files on one extends chain
constexpr std::uintmax_t max_file_bytes = 16u << 20;  // a pipeline is a few KB

std::string canonical_or_normal(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  if (ec) c = fs::absolute(p, ec).lexically_normal();
  return c.string();
}

bool inside(const std::string& path, const std::string& root) {
  fs::path rel = fs::path(path).lexically_relative(root);
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

std::optional<std::string> read_file(const std::string& path, std::string& why) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    why = "no such file";
    return std::nullopt;
  }
  if (!fs::is_regular_file(status)) {
    why = "not a regular file";
    return std::nullopt;
  }
  std::uintmax_t size = fs::file_size(path, ec);
  if (ec || size > max_file_bytes) {
    why = ec ? ec.message() : "larger than 16 MiB";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "cannot open";
    return std::nullopt;
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::optional<Node> read_with_extends(std::string_view text, const std::string& label,
                                      const std::string& dir, const ExtendsPolicy& policy,
                                      std::vector<std::string> chain, Context& ctx) {
  ctx.add_source(label, dir);
  std::optional<Node> doc = parse_toml(text, label, ctx);
  if (!doc) return std::nullopt;
  const Node* found = doc->find("extends");
  if (!found) return doc;
  const Node extends = *found;
  doc->erase("extends");

  if (extends.type != NodeType::string || extends.text.empty()) {
    ctx.error(extends.pos, "extends", "expected a string (path of a base pipeline), got " + describe(extends));
    return std::nullopt;
  }
  if (chain.size() >= max_chain) {
    ctx.error(extends.pos, "extends", "extends chain longer than " + std::to_string(max_chain) + " files");
    return std::nullopt;
  }
  fs::path target = (fs::path(dir) / extends.text).lexically_normal();
  if (fs::path(extends.text).is_absolute()) target = fs::path(extends.text).lexically_normal();
  const std::string canonical = canonical_or_normal(target);
  if (policy.root && !inside(canonical, canonical_or_normal(*policy.root))) {
    ctx.error(extends.pos, "extends", "base pipeline '" + extends.text + "' lies outside " + *policy.root);
    return std::nullopt;
  }
  if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
    std::string cycle;
    for (const std::string& file : chain) cycle += fs::path(file).filename().string() + " -> ";
    ctx.error(extends.pos, "extends", "extends cycle: " + cycle + fs::path(canonical).filename().string());
    return std::nullopt;
  }
  std::string why;
  std::optional<std::string> content = read_file(target.string(), why);
  if (!content) {
    ctx.error(extends.pos, "extends", "cannot read base pipeline '" + target.string() + "': " + why);
    return std::nullopt;
  }
  chain.push_back(canonical);
  std::optional<Node> base = read_with_extends(*content, target.string(),
                                               target.parent_path().string(), policy, chain, ctx);
  if (!base) return std::nullopt;
  merge_into(*base, *doc);
  base->pos = doc->pos;  // whole-file findings point at the derived file
  base->key_pos = doc->key_pos;
  return base;
}

}  // namespace qerl::dsl::detail
