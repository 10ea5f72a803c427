#!/usr/bin/env python3
"""transformers as the judge of qerl's compressed-tensors folders, both ways:
qerl-quantize writes a tiny random dense model (seeded, bf16) as NVFP4 /
MXFP4, transformers 5.23 + compressed-tensors 0.20.1 load the folder with
dequantize=True, and their logits on seeded random tokens must equal those
of `qerl-model logits` on the same folder (qerl's loader: the folder read as
its dequantized codes) to bf16 precision; the quantized logits must also
differ from the dense ones (the codes were applied, not ignored).

Dense models only: for MoE models transformers 5.23 fuses per-expert
checkpoint tensors into experts.gate_up_proj at load, and for packed
experts it drops the NVFP4 global scale there (seen: expert weights ~G
times too large), so it cannot judge MoE folders; qerl_quantize_test.cpp
checks those against compressed-tensors' own decompression instead.

  python ct_transformers_peer.py --qerl-quantize EXE --qerl-model EXE
Exit status 0 = all checks passed; prints the observed figures."""

import argparse
import os
import subprocess
import sys
import tempfile
import warnings

import torch
from safetensors.torch import load_file

SEQ_LEN = 24
# bf16 logits of two implementations of the same bf16 weights: summation
# order differs, so compare relative to the logits' scale.
REL_TOL = 1e-2


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qerl-quantize", required=True)
    parser.add_argument("--qerl-model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # transformers' notes on the deprecated run_compressed et al.

    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, CompressedTensorsConfig
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.manual_seed(args.seed)
    config = AutoConfig.for_model("qwen3", hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=300,
                                  max_position_embeddings=256, initializer_range=0.05, tie_word_embeddings=False,
                                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16).eval()
    tokens = torch.randint(3, config.vocab_size, (SEQ_LEN,), generator=torch.Generator().manual_seed(args.seed + 1))
    failures = []
    with tempfile.TemporaryDirectory(prefix="qerl_ct_transformers_") as work:
        dense = os.path.join(work, "dense")
        model.save_pretrained(dense)
        with torch.no_grad():
            dense_logits = model(tokens[None]).logits[0].float()
        for scheme in ("nvfp4a16", "nvfp4", "mxfp4"):
            folder = os.path.join(work, scheme)
            run([args.qerl_quantize, dense, folder, "--scheme", scheme])
            hf = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.bfloat16, quantization_config=CompressedTensorsConfig(dequantize=True)).eval()
            with torch.no_grad():
                hf_logits = hf(tokens[None]).logits[0].float()
            out = os.path.join(work, scheme + "_logits.safetensors")
            run([args.qerl_model, "logits", folder, "--tokens", ",".join(map(str, tokens.tolist())), "--out", out])
            qerl_logits = load_file(out)["logits"]
            scale = hf_logits.abs().max().item()
            diff = (qerl_logits - hf_logits).abs().max().item()
            moved = (hf_logits - dense_logits).abs().max().item()
            ok = diff <= REL_TOL * scale and moved > 10 * diff
            print(f"{'ok  ' if ok else 'FAIL'} {scheme}: max |qerl - transformers| = {diff:.3e} "
                  f"(logits up to {scale:.3f}); quantized vs dense logits differ by up to {moved:.3e}")
            if not ok:
                failures.append(scheme)
    if failures:
        sys.exit(f"FAIL: {', '.join(failures)}")


if __name__ == "__main__":
    main()
