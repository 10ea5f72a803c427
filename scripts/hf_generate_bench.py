#!/usr/bin/env python3
"""Hugging Face transformers generate at engine_bench's shape, for the same run.

Builds the model of a config.json (random weights, bf16, on the GPU), and for
each batch times greedy generate of 1 and of N new tokens from random prompts
of the given length (min_new_tokens = N: no early stop); the decode step is
(t_N - t_1) / (N - 1). Writes JSON: {"transformers": version, "<batch>":
{"step_ms", "prefill_s", "new_tokens"}}.
usage: hf_generate_bench.py CONFIG OUT.json [--batches 32,128] [--prompt 64] [--new 32]
"""
import argparse
import json
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--batches", default="32,128")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new", type=int, default=32)
    args = parser.parse_args()
    with open(args.config) as f:
        raw = json.load(f)
    config = AutoConfig.for_model(**raw)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config)
    torch.set_default_dtype(torch.float32)
    model = model.to(torch.bfloat16).eval()

    def timed(ids, new):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    result = {"transformers": transformers.__version__, "torch": torch.__version__}
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = torch.randint(3, raw["vocab_size"], (batch, args.prompt), device="cuda")
        timed(ids, 2)  # warm-up
        prefill = timed(ids, 1)
        full = timed(ids, args.new)
        result[str(batch)] = {"step_ms": (full - prefill) / (args.new - 1) * 1e3, "prefill_s": prefill,
                              "new_tokens": args.new}
        print(f"HF generate batch {batch}: {result[str(batch)]['step_ms']:.2f} ms per decode step", flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
