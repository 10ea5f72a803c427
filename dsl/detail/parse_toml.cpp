// TOML text -> Node, through toml++. Table entries are re-sorted by the
// position of their key (toml++ tables iterate in key order) so stages and
// inputs keep declaration order; nesting deeper than max_depth is rejected
// here so that no later pass can recurse without bound.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "dsl/detail/parser_guard.hpp"
#include "dsl/detail/read_document.hpp"

namespace qerl::dsl::detail {

namespace {

SourcePos position(const toml::source_position& p, const std::string& label) {
  return SourcePos{label, static_cast<int>(p.line), static_cast<int>(p.column)};
}

struct Converter {
  const std::string& label;
  Context& ctx;
  bool too_deep_reported = false;

  Node convert(const toml::node& in, const SourcePos& key_pos, int depth) {
    Node out;
    out.pos = position(in.source().begin, label);
    out.key_pos = key_pos.line > 0 ? key_pos : out.pos;
    if (depth > max_depth) {
      if (!too_deep_reported) ctx.error(out.pos, "", "nested deeper than " + std::to_string(max_depth) + " levels");
      too_deep_reported = true;
      return out;  // an empty table
    }
    if (const toml::table* t = in.as_table()) {
      out.type = NodeType::table;
      for (auto&& [key, value] : *t) {
        SourcePos kp = position(key.source().begin, label);
        out.entries.push_back(Entry{std::string(key.str()), convert(value, kp, depth + 1)});
      }
      std::stable_sort(out.entries.begin(), out.entries.end(), [](const Entry& a, const Entry& b) {
        return std::make_pair(a.value.key_pos.line, a.value.key_pos.column) <
               std::make_pair(b.value.key_pos.line, b.value.key_pos.column);
      });
    } else if (const toml::array* a = in.as_array()) {
      out.type = NodeType::array;
      for (const toml::node& item : *a) out.items.push_back(convert(item, SourcePos{}, depth + 1));
    } else if (const auto* s = in.as_string()) {
      out.type = NodeType::string;
      out.text = s->get();
    } else if (const auto* i = in.as_integer()) {
      out.type = NodeType::integer;
      out.integer = i->get();
    } else if (const auto* f = in.as_floating_point()) {
      out.type = NodeType::floating;
      out.floating = f->get();
    } else if (const auto* b = in.as_boolean()) {
      out.type = NodeType::boolean;
      out.boolean = b->get();
    } else {
      out.type = NodeType::datetime;
      std::ostringstream spelled;
      if (const auto* d = in.as_date()) spelled << d->get();
      if (const auto* tm = in.as_time()) spelled << tm->get();
      if (const auto* dt = in.as_date_time()) spelled << dt->get();
      out.text = spelled.str();
    }
    return out;
  }
};

std::string hazard_message(const ParserHazard& h) {
  char code[16];
  std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(h.code_point));
  if (h.in_string)
    return std::string("TOML syntax: character ") + code +
           " right after a backslash in a multi-line string is not supported by this TOML parser";
  return std::string("TOML syntax: character ") + code + " is not allowed outside strings and comments";
}

}  // namespace

std::optional<Node> parse_toml(std::string_view text, const std::string& label, Context& ctx) {
  // Never let toml++ 3.3.0 classify a code point that sends it into
  // undefined behaviour (see parser_guard.hpp): every one is replaced by a
  // control character, which toml++ rejects; the first is reported.
  const std::vector<ParserHazard> hazards = find_parser_hazards(text);
  const std::optional<ParserHazard> hazard =
      hazards.empty() ? std::nullopt : std::optional<ParserHazard>(hazards.front());
  std::string patched;
  if (hazard) {
    patched.assign(text.data(), text.size());
    for (auto it = hazards.rbegin(); it != hazards.rend(); ++it) patched.replace(it->offset, it->length, "\x01");
    text = patched;
  }
  toml::table table;
  try {
    table = toml::parse(text, std::string_view(label));
  } catch (const toml::parse_error& e) {
    const SourcePos at = position(e.source().begin, label);
    if (hazard && std::make_pair(at.line, at.column) >= std::make_pair(hazard->line, hazard->column))
      ctx.error(SourcePos{label, hazard->line, hazard->column}, "", hazard_message(*hazard));
    else
      ctx.error(at, "", "TOML syntax: " + std::string(e.description()));
    return std::nullopt;
  }
  if (hazard) {  // not expected: the control character is invalid in every context
    ctx.error(SourcePos{label, hazard->line, hazard->column}, "", hazard_message(*hazard));
    return std::nullopt;
  }
  Converter converter{label, ctx};
  Node root = converter.convert(table, SourcePos{label, 1, 1}, 0);
  root.pos = root.key_pos = SourcePos{label, 1, 1};
  if (converter.too_deep_reported) return std::nullopt;
  return root;
}

}  // namespace qerl::dsl::detail
