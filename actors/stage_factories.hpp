// Factories of the built-in stage implementations (LibTorch code, compiled
// in qerl_stages); builtin_stages.cpp pairs them with their declarations.
#pragma once

#include <memory>

namespace qerl::runtime {
class Stage;
}

namespace qerl::actors {

std::unique_ptr<runtime::Stage> make_data_stage();
std::unique_ptr<runtime::Stage> make_rollout_stage();
std::unique_ptr<runtime::Stage> make_reward_stage();
std::unique_ptr<runtime::Stage> make_reference_stage();
std::unique_ptr<runtime::Stage> make_learner_stage();
std::unique_ptr<runtime::Stage> make_weight_sync_stage();
std::unique_ptr<runtime::Stage> make_eval_stage();

}  // namespace qerl::actors
