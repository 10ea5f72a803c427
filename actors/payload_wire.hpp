// Wire codecs of the built-in RL payloads (issue 17, "messages that
// travel"): every payload of actors/payloads.hpp to bytes and back, with
// each field checked on arrival (shapes consistent with the batch size,
// known dtypes, sizes within what the message holds). Tensors travel as
// dtype, shape and bytes; a CUDA tensor is copied to the host first and
// arrives on the CPU (the receiving stage moves it to its device; NCCL for
// GPU-to-GPU bytes is the multi-GPU issue's). The codecs register when
// qerl_payloads is loaded; register_payload_codecs() does it explicitly.
#pragma once

#include <torch/types.h>

#include "runtime/wire.hpp"

namespace qerl::actors {

void register_payload_codecs();

// One tensor (undefined allowed): a flag, dtype code, rank, sizes, bytes.
void write_tensor(runtime::wire::Writer& w, const torch::Tensor& t);
torch::Tensor read_tensor(runtime::wire::Reader& r, const char* field);

}  // namespace qerl::actors
