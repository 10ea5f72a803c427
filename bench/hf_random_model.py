#!/usr/bin/env python3
"""A random-weight checkpoint of a config.json, built on the GPU with Hugging Face transformers.

The GPU host's quick way to the A2.7B-shaped benchmark model: transformers'
own initialisation (normal(0, initializer_range) weights, unit RMSNorm
weights), in bf16 on the GPU, saved as safetensors shards with the config.
`qerl-model init` makes the same kind of model on any machine, but spends
about 2 minutes and 60 GB of host memory on the A2.7B shape (float32 on the
CPU). The tokenizer comes separately (`qerl-model char-tokenizer`).
usage: hf_random_model.py CONFIG OUT_DIR [--seed 1]
"""
import argparse
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with open(args.config) as f:
        config = AutoConfig.for_model(**json.load(f))
    start = time.time()
    torch.manual_seed(args.seed)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config)
    torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    built = time.time()
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size="5GB")
    print(f"{args.out}: {params / 1e9:.2f} B parameters, built in {built - start:.1f} s, "
          f"saved in {time.time() - built:.1f} s")


if __name__ == "__main__":
    main()
