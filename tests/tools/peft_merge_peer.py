"""Peer side of qerl_merge_test.cpp: PEFT (0.21.2, on transformers 5.23) is
the judge of qerl's adapter folders and of qerl-merge.

  python peft_merge_peer.py make BASE_DIR ADAPTER_DIR SEED
      PEFT writes an adapter with save_pretrained: get_peft_model on
      transformers' model of BASE_DIR (r 8, alpha 16, dropout 0.05, the
      attention projections q/v/o), every lora_A / lora_B drawn from a
      seeded normal (a fresh adapter has B = 0 and would merge to nothing).

  python peft_merge_peer.py compare BASE_DIR ADAPTER_DIR MERGED_DIR LOGITS_FILE [--dtype fp32|bf16]
      PEFT's own matcher (check_target_module_exists) must select, from
      the base's Linear modules as qerl and PEFT's saved keys name them
      (per-expert), exactly the modules that the adapter holds tensors for.
      PeftModel.from_pretrained loads ADAPTER_DIR onto transformers' fp32
      model of BASE_DIR and merge_and_unload() folds it; transformers loads
      MERGED_DIR (what qerl-merge wrote). Every tensor of the two state
      dicts must agree (fp32: max |diff| <= 1e-6 * max |reference| per
      tensor; bf16: PEFT's fp32 merge rounded to bf16, within one bf16 ulp),
      the same tensors must differ from the base, and (fp32) the logits of
      the two merged models on 3 seeded random sequences of 16 tokens must
      agree to 1e-4. The ids and PEFT's logits go to LOGITS_FILE (the C++
      side runs qerl's model of MERGED_DIR on them).
Exit 0 with one line of figures, 1 with one line saying what differed.
"""
import json
import os
import sys
import warnings

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import check_target_module_exists
from safetensors import safe_open
from safetensors.torch import save_file

LOGIT_SEQUENCES, LOGIT_LENGTH, LOGIT_SEED = 3, 16, 0
transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)


def fail(message):
    print(f"peft_merge_peer.py: {message}")
    sys.exit(1)


def load_base(folder, dtype=torch.float32):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()


def make(base_dir, adapter_dir, seed):
    model = load_base(base_dir)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj", "o_proj"],
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
                count += 1
    peft_model.save_pretrained(adapter_dir)
    print(f"PEFT wrote {count} LoRA tensors to {adapter_dir}")


def v4_linear_names(config):
    """The base's Linear modules with per-expert names (qerl's, and PEFT's saved keys for per-expert adapters)."""
    names = []
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}."
        names += [prefix + f"self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        names.append(prefix + "mlp.gate")
        for expert in range(config.num_experts):
            names += [prefix + f"mlp.experts.{expert}.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
    return names + ["lm_head"]


def adapter_modules(adapter_dir):
    with safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    prefix, suffixes = "base_model.model.", (".lora_A.weight", ".lora_B.weight")
    modules = set()
    for key in keys:
        if not key.startswith(prefix) or not key.endswith(suffixes):
            fail(f"adapter key {key} is not of PEFT's saved form")
        modules.add(key[len(prefix):-len(suffixes[0])])
    return modules


def check_targets(adapter_dir, config):
    peft_config = LoraConfig.from_pretrained(adapter_dir)
    modules = adapter_modules(adapter_dir)
    selected = {name for name in v4_linear_names(config) if check_target_module_exists(peft_config, name)}
    if selected != modules:
        extra, missing = sorted(selected - modules), sorted(modules - selected)
        fail(f"target_modules {peft_config.target_modules!r} selects {len(selected)} modules, the adapter has "
             f"{len(modules)}; selected without tensors: {extra[:3]}, tensors not selected: {missing[:3]}")
    return peft_config.target_modules, len(modules)


def compare(base_dir, adapter_dir, merged_dir, logits_file, dtype):
    reference = load_base(base_dir)
    config = reference.config
    targets, num_modules = check_targets(adapter_dir, config)
    base_state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    generator = torch.Generator().manual_seed(LOGIT_SEED)
    ids = torch.randint(0, config.vocab_size, (LOGIT_SEQUENCES, LOGIT_LENGTH), generator=generator)
    with torch.no_grad():
        base_logits = reference(input_ids=ids).logits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(reference, adapter_dir)
    missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
    merged = peft_model.merge_and_unload().eval()
    want = merged.state_dict()

    ours_model = transformers.AutoModelForCausalLM.from_pretrained(merged_dir).eval()  # its config's dtype
    ours = ours_model.state_dict()
    expected_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    if set(ours) != set(want):
        fail(f"tensor names differ: only in qerl's {sorted(set(ours) - set(want))[:3]}, "
             f"only in PEFT's {sorted(set(want) - set(ours))[:3]}")
    max_abs = max_rel = 0.0
    off_by_ulp = 0
    changed_ours, changed_want = set(), set()
    for name, reference_tensor in want.items():
        got = ours[name]
        if got.dtype != expected_dtype:
            fail(f"{name}: dtype {got.dtype}, expected {expected_dtype}")
        if got.shape != reference_tensor.shape:
            fail(f"{name}: shape {list(got.shape)}, PEFT's {list(reference_tensor.shape)}")
        if not torch.equal(reference_tensor, base_state[name]):
            changed_want.add(name)
        if not torch.equal(got.float(), base_state[name].to(expected_dtype).float()):
            changed_ours.add(name)
        target = reference_tensor.to(expected_dtype).float()
        diff = (got.float() - target).abs()
        scale = target.abs().max().item()
        max_abs = max(max_abs, diff.max().item())
        max_rel = max(max_rel, diff.max().item() / scale if scale > 0 else diff.max().item())
        if dtype == "fp32":
            if diff.max().item() > 1e-6 * max(scale, 1e-30):
                fail(f"{name}: max |qerl - PEFT| {diff.max().item():.3g} over max |PEFT| {scale:.3g}")
        else:
            ulp = torch.where(target == 0, torch.full_like(target, 2.0 ** -133),
                              torch.pow(2.0, torch.floor(torch.log2(target.abs())) - 7))
            if bool((diff > ulp).any()):
                fail(f"{name}: qerl's bf16 differs from PEFT's fp32 merge rounded to bf16 by more than one ulp")
            off_by_ulp += int((diff > 0).sum())
    if not changed_want:
        fail("PEFT's merge changed no tensor: the adapter was not applied")
    if changed_ours != changed_want:
        fail(f"changed tensors differ: only qerl {sorted(changed_ours - changed_want)[:3]}, "
             f"only PEFT {sorted(changed_want - changed_ours)[:3]}")

    with torch.no_grad():
        want_logits = merged(input_ids=ids).logits.float()
        ours_logits = ours_model.float()(input_ids=ids).logits
    logits_diff = (ours_logits - want_logits).abs().max().item()
    adapter_effect = (want_logits - base_logits).abs().max().item()
    if adapter_effect < 1e-3:
        fail(f"the adapter moves the logits by only {adapter_effect:.3g}")
    if dtype == "fp32" and logits_diff > 1e-4:
        fail(f"logits of the two merged models differ by {logits_diff:.3g}")
    save_file({"input_ids": ids.contiguous(), "logits": want_logits.contiguous()}, logits_file)
    print(f"PEFT merged {num_modules} modules (target_modules {json.dumps(targets if isinstance(targets, str) else sorted(targets))}; "
          f"{len(missing)} missing-key warnings); {len(want)} tensors, {len(changed_want)} changed: "
          f"max |qerl - PEFT| {max_abs:.3g}, max relative {max_rel:.3g}"
          + (f", {off_by_ulp} elements one bf16 ulp apart" if dtype == "bf16" else "")
          + f"; logits max |diff| {logits_diff:.3g} (adapter moves them by {adapter_effect:.3g})")


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "make":
        make(args[1], args[2], int(args[3]))
    elif len(args) in (5, 7) and args[0] == "compare":
        dtype = "fp32"
        if len(args) == 7:
            if args[5] != "--dtype" or args[6] not in ("fp32", "bf16"):
                fail("usage: --dtype fp32|bf16")
            dtype = args[6]
        compare(args[1], args[2], args[3], args[4], dtype)
    else:
        fail("usage: peft_merge_peer.py make BASE ADAPTER SEED | compare BASE ADAPTER MERGED LOGITS [--dtype D]")


if __name__ == "__main__":
    main()
