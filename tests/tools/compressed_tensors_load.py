"""Peer side of qerl_quantize_test.cpp: compressed-tensors reads a folder
that qerl-quantize wrote and decompresses every quantized weight.

  python compressed_tensors_load.py MODEL_DIR OUT_FILE

The decompression is compressed-tensors 0.20.1's checkpoint-level
dequantizer (entrypoints.convert CompressedTensorsDequantizer.validate: it
validates config.json's quantization_config, matches the stored tensors
against the config's targets and ignore list, runs the registered
compressor's decompress() per module and fails on missing or residual
qparams). Besides, a skeleton of nn.Linear modules named as the
checkpoint's Linear weights goes through apply_quantization_config (what
transformers' loader does): the modules it quantizes must be exactly those
stored packed, and for W4A4 each must register input_global_scale, which
is then present in the folder (the dequantizer drops activation scales, so
they are checked here and removed before it runs). "<module>.weight" of
every packed module, as decompress returns it (bf16), goes to OUT_FILE.
Exit 0 on success, 1 with one line on a mismatch.
"""
import json
import os
import sys

import torch
from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import CompressedTensorsDequantizer
from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config
from safetensors import safe_open
from safetensors.torch import save_file

def fail(message):
    print(f"compressed_tensors_load.py: {message}")
    sys.exit(1)


def load_tensors(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else [
        "model.safetensors"]
    tensors = {}
    for name in files:
        with safe_open(os.path.join(folder, name), "pt") as f:
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    return tensors


def skeleton(linear_names):
    root = torch.nn.Module()
    for name in linear_names:
        parent = root
        parts = name.split(".")
        for part in parts[:-1]:
            if not hasattr(parent, part):
                parent.add_module(part, torch.nn.Module())
            parent = getattr(parent, part)
        parent.add_module(parts[-1], torch.nn.Linear(1, 1, bias=False, device="meta"))
    return root


def main():
    if len(sys.argv) != 3:
        fail("usage: compressed_tensors_load.py MODEL_DIR OUT_FILE")
    folder, out_file = sys.argv[1], sys.argv[2]
    dequantizer = CompressedTensorsDequantizer(folder)  # bf16 output, as decompress gives
    qconfig = dequantizer.quant_config
    if qconfig.quantization_status != "compressed":
        fail(f"quantization_status {qconfig.quantization_status}")
    tensors = load_tensors(folder)

    packed = sorted(k[: -len(".weight_packed")] for k in tensors if k.endswith(".weight_packed"))
    dense = sorted(k[: -len(".weight")] for k, t in tensors.items()
                   if k.endswith(".weight") and t.dim() == 2 and not k.endswith("embed_tokens.weight"))
    model = skeleton(packed + dense)
    apply_quantization_config(model, QuantizationConfig.model_validate(qconfig.model_dump()))
    selected = sorted(n for n, m in model.named_modules() if getattr(m, "quantization_scheme", None) is not None)
    if selected != packed:
        extra, missing = sorted(set(selected) - set(packed)), sorted(set(packed) - set(selected))
        fail(f"config selects {len(selected)} modules, {len(packed)} stored packed; "
             f"not packed: {extra[:3]}, packed but not selected: {missing[:3]}")
    for name in qconfig.ignore:
        if name in packed or f"{name}.weight" not in tensors:
            fail(f"ignore entry {name} is not a dense Linear of the checkpoint")
    for name in packed:
        registered = hasattr(model.get_submodule(name), "input_global_scale")
        stored = tensors.pop(f"{name}.input_global_scale", None)
        if registered != (stored is not None):
            fail(f"{name}: input_global_scale registered {registered}, stored {stored is not None}")
        if stored is not None and (stored.dtype != torch.float32 or list(stored.shape) != [1]):
            fail(f"{name}: input_global_scale {stored.dtype} {list(stored.shape)}, expected float32 [1]")

    result = dequantizer.validate(tensors)
    out = {f"{name}.weight": result[f"{name}.weight"].contiguous() for name in packed}
    save_file(out, out_file)
    print(f"decompressed {len(out)} weights ({qconfig.format}), dtype {next(iter(out.values())).dtype}")


if __name__ == "__main__":
    main()
