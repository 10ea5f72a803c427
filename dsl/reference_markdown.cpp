// docs/pipeline-reference.md: every section, key and stage type of a Schema
// as Markdown tables. Deterministic (schema order), so the checked-in page
// can be regenerated and diffed.
#include "dsl/detail/convert.hpp"
#include "dsl/explain.hpp"

namespace qerl::dsl {

namespace {

std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? "\\|" : std::string(1, c);
  return out;
}

std::string code(const std::string& text) { return text.empty() ? "" : "`" + cell(text) + "`"; }

std::string allowed(const KeySpec& key) {
  if (!key.one_of.empty()) {
    std::string out;
    for (const std::string& v : key.one_of) out += (out.empty() ? "" : ", ") + code(v);
    return out;
  }
  return cell(detail::range_text(key));
}

std::string keys_table(const std::vector<KeySpec>& keys) {
  std::string out = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  for (const KeySpec& k : keys) {
    const bool is_inputs = k.name == "inputs";  // a table, which ValueKind does not name
    const std::string def = is_inputs ? "{}" : k.default_value ? to_toml_literal(*k.default_value) : "";
    out += "| " + code(k.name) + " | " + (is_inputs ? "table" : kind_name(k.kind)) + " | " +
           (def.empty() ? "**required**" : code(def)) + " | " + allowed(k) + " | " + cell(k.doc) + " |\n";
  }
  return out;
}

std::string ports_table(const std::vector<PortSpec>& ports, bool inputs) {
  if (ports.empty()) return "(none)\n";
  std::string out = inputs ? "| port | type | optional | meaning |\n|---|---|---|---|\n"
                           : "| port | type | meaning |\n|---|---|---|\n";
  for (const PortSpec& p : ports) {
    out += "| " + code(p.name) + " | " + code(p.type) + " | ";
    if (inputs) out += std::string(p.optional ? "yes" : "no") + " | ";
    out += cell(p.doc) + " |\n";
  }
  return out;
}

}  // namespace

std::string reference_markdown(const Schema& schema) {
  std::string out =
      "# Pipeline reference\n\n"
      "Generated from the schema (`qerl-run --explain`); do not edit by hand.\n\n"
      "## Top-level keys\n\n"
      "| key | type | default | meaning |\n|---|---|---|---|\n"
      "| `plugins` | list of strings | `[]` | Shared libraries that add stage types; relative "
      "paths resolve against the file that names them. |\n"
      "| `extends` | string | | Base pipeline (relative to this file); values here override "
      "it, tables merge, arrays replace. |\n";
  for (const SectionSchema& s : schema.sections())
    out += "\n## [" + s.name + "]\n\n" + cell(s.doc) + "\n\n" + keys_table(s.keys);
  out += "\n## Stages\n\nEach `[stages.<name>]` table is one actor (or `replicas` of it). "
         "Keys every stage accepts:\n\n" + keys_table(schema.common_stage_keys());
  for (const StageTypeSchema& t : schema.stage_types()) {
    out += "\n### Stage type `" + t.name + "`\n\n" + cell(t.doc) + "\n\n";
    out += std::string("Needs a device (`gpus`): ") + (t.needs_device ? "yes" : "no") + "\n\n";
    out += "Inputs:\n\n" + ports_table(t.inputs, true) + "\nOutputs:\n\n" + ports_table(t.outputs, false);
    out += "\nKeys:\n\n" + (t.keys.empty() ? std::string("(none)\n") : keys_table(t.keys));
  }
  return out;
}

}  // namespace qerl::dsl
