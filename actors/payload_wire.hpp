// Wire codecs of the built-in RL payloads (issue 17, "messages that
// travel"): every payload of actors/payloads.hpp to bytes and back, with
// each field checked on arrival (shapes consistent with the batch size,
// known dtypes, sizes within what the message holds). Tensors travel as
// dtype, shape and bytes; a CUDA tensor is copied to the host first and
// arrives on the CPU (the receiving stage moves it to its device), except a
// WeightsUpdate marked `beside`: its tensors move over a bulk link (NCCL
// GPU to GPU, bulk_transfer.hpp) and only their specs and the link's
// ticket are in the message. The codecs register when
// qerl_payloads is loaded; register_payload_codecs() does it explicitly.
#pragma once

#include <torch/types.h>

#include "actors/bulk_transfer.hpp"
#include "runtime/wire.hpp"

namespace qerl::actors {

void register_payload_codecs();

// One tensor (undefined allowed): a flag, dtype code, rank, sizes, bytes.
void write_tensor(runtime::wire::Writer& w, const torch::Tensor& t);
torch::Tensor read_tensor(runtime::wire::Reader& r, const char* field);

// A defined tensor's dtype code, rank and sizes only (read: checked, at
// most 2^40 values).
void write_tensor_spec(runtime::wire::Writer& w, const torch::Tensor& t);
bulk::TensorSpec read_tensor_spec(runtime::wire::Reader& r, const char* field);

}  // namespace qerl::actors
