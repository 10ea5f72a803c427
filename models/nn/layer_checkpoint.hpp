// Activation checkpointing of one decoder layer (the learner's optional
// memory saving, stages.learner.activation_checkpointing): the forward
// keeps only the layer's input; the backward runs the layer again from it,
// on the routes the forward took and from the random state it started with
// (LoRA dropout), and back-propagates through that second pass. Gradients
// are the plain forward's up to the order of float accumulation; the
// activations held between the passes shrink from every layer's to one
// [tokens, hidden] tensor per layer.
#pragma once

#include <torch/types.h>

#include "models/nn/decoder_layer.hpp"

namespace qerl::models {

// layer.forward(hidden, rope, mask, no cache, route), checkpointed. With
// gradients enabled only (the caller checks); `layer` must outlive the
// backward.
LayerOutput checkpointed_layer_forward(DecoderLayerImpl& layer, const torch::Tensor& hidden, const RopeTables& rope,
                                       const torch::Tensor& mask, const LayerRoute& route);

}  // namespace qerl::models
