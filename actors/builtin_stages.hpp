// The built-in stage types: data, rollout, reward.*, reference, learner,
// weight_sync, eval. Each is declared with its ports and stage-specific keys
// so that pipelines validate and `--dry-run` works; a type whose
// implementation has not landed yet has no factory, and a real run that uses
// it stops before spawning with one clear line.
#pragma once

namespace qerl::runtime {
class StageRegistry;
}

namespace qerl::actors {

void register_builtin_stages(runtime::StageRegistry& registry);

}  // namespace qerl::actors
