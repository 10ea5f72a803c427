// Node -> Value for one key, with every check the KeySpec declares. List
// keys check each element (its own position), so `gpus = [0, -1]` points at
// the -1.
#include "dsl/detail/convert.hpp"

#include <cmath>

#include "dsl/suggest.hpp"

namespace qerl::dsl::detail {

namespace {

bool in_range(double v, const KeySpec& spec) {
  if (std::isnan(v)) return !spec.min && !spec.max;
  if (spec.min && (spec.min_exclusive ? v <= *spec.min : v < *spec.min)) return false;
  if (spec.max && (spec.max_exclusive ? v >= *spec.max : v > *spec.max)) return false;
  return true;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", '" : "'") + items[i] + "'";
  return out;
}

// Scalar element check shared by scalar keys and list elements.
bool check_number(const Node& node, double v, const KeySpec& spec, const std::string& key_path,
                  Context& ctx) {
  if (in_range(v, spec)) return true;
  ctx.error(node.pos, key_path, range_text(spec) + ", got " + spelling(node));
  return false;
}

bool check_string(const Node& node, const KeySpec& spec, const std::string& key_path, Context& ctx) {
  if (spec.one_of.empty()) return true;
  for (const std::string& allowed : spec.one_of)
    if (node.text == allowed) return true;
  ctx.error(node.pos, key_path,
            "must be one of " + quoted_list(spec.one_of) + ", got " + to_toml_literal(Value(node.text)) +
                did_you_mean(node.text, spec.one_of));
  return false;
}

void wrong_type(const Node& node, const char* expected, const std::string& key_path, Context& ctx) {
  ctx.error(node.pos, key_path, std::string("expected ") + expected + ", got " + describe(node));
}

}  // namespace

std::string number_text(double value) {
  if (std::floor(value) == value && std::fabs(value) < 1e15)
    return std::to_string(static_cast<int64_t>(value));
  return to_toml_literal(Value(value));
}

std::string range_text(const KeySpec& spec) {
  if (spec.min && spec.max)
    return "must be in " + std::string(spec.min_exclusive ? "(" : "[") + number_text(*spec.min) +
           ", " + number_text(*spec.max) + (spec.max_exclusive ? ")" : "]");
  if (spec.min) return std::string("must be ") + (spec.min_exclusive ? "> " : ">= ") + number_text(*spec.min);
  if (spec.max) return std::string("must be ") + (spec.max_exclusive ? "< " : "<= ") + number_text(*spec.max);
  return "";
}

std::optional<Value> to_value(const Node& node, const KeySpec& spec, const std::string& key_path,
                              Context& ctx) {
  switch (spec.kind) {
    case ValueKind::boolean:
      if (node.type != NodeType::boolean) return wrong_type(node, "boolean (true or false)", key_path, ctx), std::nullopt;
      return Value(node.boolean);
    case ValueKind::integer:
      if (node.type != NodeType::integer) return wrong_type(node, "integer", key_path, ctx), std::nullopt;
      if (!check_number(node, static_cast<double>(node.integer), spec, key_path, ctx)) return std::nullopt;
      return Value(node.integer);
    case ValueKind::floating: {
      double v = 0;
      if (node.type == NodeType::floating) v = node.floating;
      else if (node.type == NodeType::integer) v = static_cast<double>(node.integer);
      else return wrong_type(node, "float", key_path, ctx), std::nullopt;
      if (!check_number(node, v, spec, key_path, ctx)) return std::nullopt;
      return Value(v);
    }
    case ValueKind::string:
      if (node.type != NodeType::string) return wrong_type(node, "string", key_path, ctx), std::nullopt;
      if (!check_string(node, spec, key_path, ctx)) return std::nullopt;
      return Value(node.text);
    case ValueKind::string_list: {
      if (node.type == NodeType::string && spec.single_string_ok) {
        if (!check_string(node, spec, key_path, ctx)) return std::nullopt;
        return Value(std::vector<std::string>{node.text});
      }
      if (node.type != NodeType::array) return wrong_type(node, "list of strings", key_path, ctx), std::nullopt;
      std::vector<std::string> out;
      bool ok = true;
      for (const Node& item : node.items) {
        if (item.type != NodeType::string) {
          wrong_type(item, "string (list element)", key_path, ctx);
          ok = false;
        } else if (check_string(item, spec, key_path, ctx)) {
          out.push_back(item.text);
        } else {
          ok = false;
        }
      }
      return ok ? std::optional<Value>(Value(std::move(out))) : std::nullopt;
    }
    case ValueKind::integer_list: {
      if (node.type != NodeType::array) return wrong_type(node, "list of integers", key_path, ctx), std::nullopt;
      std::vector<int64_t> out;
      bool ok = true;
      for (const Node& item : node.items) {
        if (item.type != NodeType::integer) {
          wrong_type(item, "integer (list element)", key_path, ctx);
          ok = false;
        } else if (check_number(item, static_cast<double>(item.integer), spec, key_path, ctx)) {
          out.push_back(item.integer);
        } else {
          ok = false;
        }
      }
      return ok ? std::optional<Value>(Value(std::move(out))) : std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace qerl::dsl::detail
