#!/usr/bin/env python3
"""Parity of qerl's model code with HF transformers (the oracle) for one
model type: builds a tiny random HF model from a config (no downloads),
saves it, and checks qerl-model against it: fp32 logits (max |diff| <= 1e-4),
bf16/fp16 logits (<= 1e-2), MoE routing indices (identical in all), greedy generation of 32 tokens for two
prompts of different lengths batched by qerl (identical to HF, one prompt at
a time), fused-expert checkpoints, and checkpoints written by qerl (convert,
init) loading back in transformers with identical logits.
Exit status 0 = all checks passed; prints the observed figures."""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

LOGIT_TOL = 1e-4
LOW_PRECISION_TOL = 1e-2  # bf16 / fp16
NEW_TOKENS = 32
SEQ_LEN = 40

COMMON = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, vocab_size=384,
              max_position_embeddings=512, initializer_range=0.1, rms_norm_eps=1e-6,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)

# Tiny configs covering each architecture's options: GQA everywhere, MoE
# with 8 experts and top-k >= 2, a dense layer among MoE ones (qwen2_moe via
# mlp_only_layers, qwen3_moe via decoder_sparse_step), a shared expert,
# q/k norm with an explicit head_dim, q/k/v biases, tied embeddings, a
# sliding window shorter than the test sequence.
CONFIGS = {
    "qwen2_moe": dict(num_hidden_layers=3, intermediate_size=96, moe_intermediate_size=32,
                      shared_expert_intermediate_size=48, num_experts=8, num_experts_per_tok=2,
                      norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1],
                      rope_theta=10000.0),
    "qwen3_moe": dict(num_hidden_layers=4, intermediate_size=96, moe_intermediate_size=32, head_dim=24,
                      num_experts=8, num_experts_per_tok=3, norm_topk_prob=True, decoder_sparse_step=2,
                      rope_theta=1000000.0),
    "mixtral": dict(num_hidden_layers=2, intermediate_size=48, num_local_experts=6, num_experts_per_tok=2,
                    sliding_window=24),
    "qwen2": dict(num_hidden_layers=2, intermediate_size=96, tie_word_embeddings=True),
    "qwen3": dict(num_hidden_layers=2, intermediate_size=96, head_dim=32, tie_word_embeddings=True),
    "llama": dict(num_hidden_layers=2, intermediate_size=96, attention_bias=True, mlp_bias=True),
}


CORPUS = ["The quick brown fox jumps over the lazy dog. " * 3,
          "Question: what is 12 + 30? Answer: 42 #### 42",
          "Mixture-of-experts routers pick the top-k experts for every token."]


def make_tokenizer(path):
    """A small byte-level BPE tokenizer.json (ids 0/1/2 = pad/bos/eos, as in COMMON)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=COMMON["vocab_size"], special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(path)
    return tok


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def hf_forward(model, tokens):
    """-> (logits [T, V] float32, routing [T, L_moe, K] int64 or None) via hooks on the routers."""
    captured, hooks = [], []
    for layer in model.model.layers:
        router = getattr(layer.mlp, "gate", None)
        if router is not None and type(router).__name__.endswith("TopKRouter"):
            hooks.append(router.register_forward_hook(lambda m, i, o: captured.append(o[2])))
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].float()
    for h in hooks:
        h.remove()
    return logits, (torch.stack(captured, 1) if captured else None)


def qerl_logits(qerl_model, ckpt, tokens, workdir, dtype=None):
    out = os.path.join(workdir, "qerl_logits.safetensors")
    cmd = [qerl_model, "logits", ckpt, "--tokens", ",".join(map(str, tokens)), "--out", out]
    if dtype:
        cmd += ["--dtype", dtype]
    run(cmd)
    t = load_file(out)
    return t["logits"], t.get("routing")


def check(ok, what, failures):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-type", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--qerl-model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.manual_seed(args.seed)
    mt = args.model_type
    config = AutoConfig.for_model(mt, **COMMON, **CONFIGS[mt])
    model = AutoModelForCausalLM.from_config(config).eval()
    is_moe = mt in ("qwen2_moe", "qwen3_moe", "mixtral")
    failures = []

    with tempfile.TemporaryDirectory(prefix=f"qerl_parity_{mt}_") as work:
        hf_dir = os.path.join(work, "hf")
        model.save_pretrained(hf_dir)
        gen = torch.Generator().manual_seed(args.seed + 1)
        tokens = torch.randint(3, config.vocab_size, (SEQ_LEN,), generator=gen).tolist()

        # 1. fp32 logits and routing.
        ref_logits, ref_routing = hf_forward(model, tokens)
        logits, routing = qerl_logits(args.qerl_model, hf_dir, tokens, work)
        diff = (logits - ref_logits).abs().max().item()
        print(f"{mt}: max |logits - HF| fp32 = {diff:.3e}")
        check(diff <= LOGIT_TOL, f"fp32 logits within {LOGIT_TOL}", failures)
        if is_moe:
            same = routing is not None and torch.equal(routing.long(), ref_routing)
            if routing is not None and not same:
                agree = (routing.long() == ref_routing).float().mean().item()
                print(f"  routing agreement {agree:.4f}")
            check(same, f"routing indices identical {list(ref_routing.shape)}", failures)

        # 2. bf16 / fp16: qerl mirrors transformers' default CPU paths (sdpa
        # attention, grouped_mm experts: one fp32 sum over the top-k slots),
        # bit-identical today; the bound leaves room for kernel changes.
        for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
            low = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype).eval()
            low_ref, low_ref_routing = hf_forward(low, tokens)
            low_logits, low_routing = qerl_logits(args.qerl_model, hf_dir, tokens, work, dtype=name)
            low_diff = (low_logits - low_ref).abs().max().item()
            print(f"{mt}: max |logits - HF| {name} = {low_diff:.3e}")
            check(low_diff <= LOW_PRECISION_TOL, f"{name} logits within {LOW_PRECISION_TOL}", failures)
            if is_moe:
                check(torch.equal(low_routing.long(), low_ref_routing), f"{name} routing indices identical", failures)

        # 3. Greedy generation: two prompts of different lengths, batched (left
        # padding) in qerl, one at a time in HF.
        prompts = [tokens[:7], tokens[5:24]]
        cmd = [args.qerl_model, "generate", hf_dir, "--max-new-tokens", str(NEW_TOKENS), "--temperature", "0", "--json"]
        for p in prompts:
            cmd += ["--tokens", ",".join(map(str, p))]
        rows = [json.loads(line) for line in run(cmd).splitlines() if line.strip()]
        for i, (p, row) in enumerate(zip(prompts, rows)):
            with torch.no_grad():
                ref = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                     max_new_tokens=NEW_TOKENS, do_sample=False)[0, len(p):].tolist()
            same = row["tokens"] == ref
            if not same:
                print(f"  qerl {row['tokens']}\n  HF   {ref}")
            check(same, f"greedy generation prompt {i} ({len(ref)} tokens, {row['finish_reason']})", failures)

        # 3b. Text in: qerl-model tokenize / generate --prompt with a tokenizer.json.
        tok = make_tokenizer(os.path.join(hf_dir, "tokenizer.json"))
        text = "What is 12 + 30? The quick fox"
        ids = tok.encode(text).ids
        qerl_ids = [int(x) for x in run([args.qerl_model, "tokenize", hf_dir, "--text", text]).strip().split(",")]
        check(qerl_ids == ids, f"tokenize ({len(ids)} ids)", failures)
        row = json.loads(run([args.qerl_model, "generate", hf_dir, "--prompt", text, "--max-new-tokens", "8",
                              "--temperature", "0", "--json"]).splitlines()[0])
        with torch.no_grad():
            ref = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=8, do_sample=False)[0, len(ids):].tolist()
        check(row["tokens"] == ref and row["text"] == tok.decode(ref, skip_special_tokens=False),
              "generate --prompt: tokens and text", failures)

        # 4. Fused expert tensors (transformers 5.x in-memory layout) load in qerl.
        if is_moe:
            fused_dir = os.path.join(work, "fused")
            os.makedirs(fused_dir)
            state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight" or not config.tie_word_embeddings}
            assert any(k.endswith("experts.gate_up_proj") for k in state), "expected fused experts in memory"
            save_file(state, os.path.join(fused_dir, "model.safetensors"), metadata={"format": "pt"})
            with open(os.path.join(hf_dir, "config.json")) as f, open(os.path.join(fused_dir, "config.json"), "w") as g:
                g.write(f.read())
            fused_logits, _ = qerl_logits(args.qerl_model, fused_dir, tokens, work)
            check(torch.equal(fused_logits, logits), "fused-expert checkpoint gives the same logits", failures)

        # 5. qerl-written checkpoints load back in transformers.
        conv_dir = os.path.join(work, "converted")
        run([args.qerl_model, "convert", hf_dir, "--out", conv_dir])
        back, info = AutoModelForCausalLM.from_pretrained(conv_dir, output_loading_info=True)
        clean = not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        back_logits, _ = hf_forward(back.eval(), tokens)
        check(clean and torch.equal(back_logits, ref_logits), "convert: transformers loads it, identical logits", failures)

        init_dir = os.path.join(work, "init")
        cfg_path = os.path.join(hf_dir, "config.json")
        run([args.qerl_model, "init", "--config", cfg_path, "--out", init_dir, "--seed", "7"])
        init_model, info = AutoModelForCausalLM.from_pretrained(init_dir, output_loading_info=True)
        clean = not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        init_ref, _ = hf_forward(init_model.eval(), tokens)
        init_logits, _ = qerl_logits(args.qerl_model, init_dir, tokens, work)
        init_diff = (init_logits - init_ref).abs().max().item()
        check(clean and init_diff <= LOGIT_TOL, f"init: transformers loads it, logits within {init_diff:.1e}", failures)

    if failures:
        sys.exit(f"{mt}: {len(failures)} check(s) failed")
    print(f"{mt}: all checks passed")


if __name__ == "__main__":
    main()
