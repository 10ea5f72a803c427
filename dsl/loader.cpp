// The loader's pipeline of passes: read (with extends) -> --set overrides ->
// sections -> stages -> derived values and cross-field checks. Diagnostics of
// all passes are collected and thrown together; a syntax error or a broken
// extends chain stops early, since nothing after it would be meaningful.
#include "dsl/loader.hpp"

#include <filesystem>

#include "dsl/detail/context.hpp"
#include "dsl/detail/overrides.hpp"
#include "dsl/detail/read_document.hpp"
#include "dsl/detail/validate.hpp"

namespace qerl::dsl {

namespace fs = std::filesystem;
using detail::Context;
using detail::Node;

namespace {

struct Source {
  std::string text;
  std::string label;
  std::string dir;
  std::vector<std::string> chain;  // canonical paths already on the extends chain
};

Source read_source(const std::string& path) {
  std::string why;
  std::optional<std::string> text = detail::read_file(path, why);
  if (!text)
    throw PipelineError({Diagnostic{Severity::error, SourcePos{path, 0, 0}, "",
                                    "cannot read pipeline: " + why}});
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  return Source{std::move(*text), path, fs::path(path).parent_path().string(),
                {ec ? path : canonical.string()}};
}

Node read_tree(const Source& source, const detail::ExtendsPolicy& policy, Context& ctx) {
  std::optional<Node> root =
      detail::read_with_extends(source.text, source.label, source.dir, policy, source.chain, ctx);
  ctx.throw_if_errors();
  return std::move(*root);  // no errors means a tree
}

PipelineSpec load(const Source& source, const Overrides& overrides, const Schema& schema,
                  const detail::ExtendsPolicy& policy) {
  Context ctx;
  Node root = read_tree(source, policy, ctx);
  detail::apply_overrides(root, overrides, schema, /*plugins_only=*/false, ctx);
  PipelineSpec spec;
  spec.source_file = source.label;
  detail::read_sections(root, schema, spec, ctx);
  detail::read_stages(root, schema, spec, ctx);
  detail::finish_and_cross_check(root, spec, ctx);
  ctx.throw_if_errors();
  spec.warnings = ctx.sorted_warnings();
  return spec;
}

}  // namespace

std::vector<std::string> read_plugin_list(const std::string& path, const Overrides& overrides) {
  Context ctx;
  Node root = read_tree(read_source(path), {}, ctx);
  detail::apply_overrides(root, overrides, Schema::builtin(), /*plugins_only=*/true, ctx);
  std::vector<std::string> plugins = detail::read_plugins(root, ctx);
  ctx.throw_if_errors();
  return plugins;
}

PipelineSpec load_pipeline(const std::string& path, const Overrides& overrides,
                           const Schema& schema) {
  return load(read_source(path), overrides, schema, {});
}

PipelineSpec load_pipeline_text(std::string_view text, const std::string& name,
                                const Overrides& overrides, const Schema& schema,
                                const LoadOptions& options) {
  Source source{std::string(text), name, options.extends_root.value_or(""), {}};
  return load(source, overrides, schema, detail::ExtendsPolicy{options.extends_root});
}

}  // namespace qerl::dsl
