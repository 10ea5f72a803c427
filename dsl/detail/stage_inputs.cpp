// Reading one stage's inputs into InputSpecs (with the position of each
// reference), checking the reference syntax, staleness >= 0, port names
// against the stage type, and that every non-optional port is connected.
#include <algorithm>

#include "dsl/detail/stage_inputs.hpp"
#include "dsl/suggest.hpp"

namespace qerl::dsl::detail {

namespace {

bool valid_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_name_char);
}

// "stage" or "stage.port" into `input`; false when malformed (reported).
bool parse_reference(const Node& node, const std::string& path, InputSpec& input, Context& ctx) {
  const std::string& ref = node.text;
  const size_t dot = ref.find('.');
  input.from_stage = ref.substr(0, dot);
  input.from_port = dot == std::string::npos ? "" : ref.substr(dot + 1);
  input.pos = node.pos;
  if (valid_name(input.from_stage) && (dot == std::string::npos || valid_name(input.from_port)))
    return true;
  ctx.error(node.pos, path, "malformed input reference " + spelling(node) +
                                ": expected \"stage\" or \"stage.port\" (letters, digits, '_', '-')");
  return false;
}

bool read_table_input(const Node& node, const std::string& path, InputSpec& input, Context& ctx) {
  bool ok = true;
  const Node* from = nullptr;
  for (const Entry& e : node.entries) {
    if (e.key == "from") {
      from = &e.value;
    } else if (e.key == "staleness") {
      if (e.value.type != NodeType::integer) {
        ctx.error(e.value.pos, path + ".staleness", "expected integer (steps of lag), got " + describe(e.value));
        ok = false;
      } else if (e.value.integer < 0) {
        ctx.error(e.value.pos, path + ".staleness",
                  "must be >= 0 (0 = on-policy, k = up to k steps of lag), got " + std::to_string(e.value.integer));
        ok = false;
      } else {
        input.staleness = e.value.integer;
      }
    } else {
      ctx.error(e.value.key_pos, path + "." + e.key, "unknown key '" + e.key + "' in an input; expected "
                "from = \"stage.port\" and optionally staleness = k" + did_you_mean(e.key, {"from", "staleness"}));
      ok = false;
    }
  }
  if (!from) {
    ctx.error(node.pos, path + ".from", "missing required key: from = \"stage.port\"");
    return false;
  }
  if (from->type != NodeType::string) {
    ctx.error(from->pos, path + ".from", "expected string \"stage.port\", got " + describe(*from));
    return false;
  }
  return parse_reference(*from, path + ".from", input, ctx) && ok;
}

std::string port_list(const std::vector<PortSpec>& ports) {
  std::string out;
  for (const PortSpec& p : ports) out += (out.empty() ? "" : ", ") + p.name;
  return out.empty() ? "(none)" : out;
}

}  // namespace

std::vector<InputSpec> read_stage_inputs(const Node* inputs, const Node& stage_node,
                                         const std::string& stage_path, const StageTypeSchema* type,
                                         Context& ctx) {
  std::vector<InputSpec> out;
  const std::string inputs_path = stage_path + ".inputs";
  if (inputs && !inputs->is_table()) {
    ctx.error(inputs->pos, inputs_path, "expected a table { port = \"stage.port\", ... }, got " + describe(*inputs));
    return out;
  }
  std::vector<std::string> port_names;
  if (type)
    for (const PortSpec& p : type->inputs) port_names.push_back(p.name);
  if (inputs) {
    for (const Entry& e : inputs->entries) {
      const std::string path = inputs_path + "." + e.key;
      if (type && !type->find_input(e.key)) {
        ctx.error(e.value.key_pos, path, "stage type '" + type->name + "' has no input port '" + e.key + "'" +
                                             did_you_mean(e.key, port_names) + "; its inputs: " +
                                             port_list(type->inputs));
        continue;
      }
      InputSpec input;
      input.port = e.key;
      bool ok = false;
      if (e.value.type == NodeType::string) ok = parse_reference(e.value, path, input, ctx);
      else if (e.value.is_table()) ok = read_table_input(e.value, path, input, ctx);
      else ctx.error(e.value.pos, path, "expected \"stage.port\" or { from = \"stage.port\", staleness = k }, got " +
                                            describe(e.value));
      if (ok) out.push_back(std::move(input));
    }
  }
  if (type) {
    for (const PortSpec& p : type->inputs) {
      if (p.optional || (inputs && inputs->find(p.name))) continue;
      ctx.error(inputs ? inputs->pos : stage_node.pos, inputs_path + "." + p.name,
                "input port '" + p.name + "' (" + p.type + ") of stage type '" + type->name +
                    "' is not connected");
    }
  }
  return out;
}

}  // namespace qerl::dsl::detail
