// Names of the message types that flow between the built-in stages (see
// ../shared/DESIGN.md, "Core messages"). The graph checks that an edge's
// producer and consumer ports carry the same name; the payload classes
// themselves arrive with the stages that produce them.
#pragma once

namespace qerl::actors::port_types {

inline constexpr const char* prompt_batch = "PromptBatch";    // prompts (ragged), answers, group ids
inline constexpr const char* rollout_batch = "RolloutBatch";  // tokens, masks, sampler log-probs, routing
inline constexpr const char* scores = "Scores";               // rewards[B] + details
inline constexpr const char* ref_logprobs = "RefLogprobs";    // logprobs[B, S] of the frozen policy
inline constexpr const char* policy_update = "PolicyUpdate";  // learner's new parameters (or LoRA) + version
inline constexpr const char* weights_update = "WeightsUpdate";  // what rollout loads: format + transport

}  // namespace qerl::actors::port_types
