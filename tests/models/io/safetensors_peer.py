"""Peer side of the safetensors parity tests (peer_parity_test.cpp).

The Python `safetensors` package and huggingface_hub are the reference: this
script writes files with them and checks files that qerl wrote. Tensor bytes
travel as hex in JSON ({name: {"dtype", "shape", "hex"}}), so both sides
compare raw bits (NaN payloads and -0.0 included), never converted values.

  write OUT SEED            py_all.safetensors (all dtypes, several metadata
                            keys), py_one.safetensors (one key), hf/ (sharded
                            as save_pretrained does) and *.expected.json
  check FILE EXPECTED       load FILE with safetensors, compare with EXPECTED
  resave FILE OUT           load FILE, save_file it again as OUT
  check_hf DIR MAX_BYTES    DIR's index must equal huggingface_hub's split
Exit status 0 on success; a failed check prints one line and exits 1.
"""
import json
import os
import sys

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors import safe_open
from safetensors.torch import load_file, save_file

DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "U8": torch.uint8,
    "I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
    "BOOL": torch.bool, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
}
NAMES = {dtype: name for name, dtype in DTYPES.items()}


def raw_bytes(tensor):
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def random_tensor(dtype, shape, generator):
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    numel = 1
    for dim in shape:
        numel *= dim
    itemsize = torch.empty((), dtype=dtype).element_size()
    data = torch.randint(0, 256, (numel * itemsize,), dtype=torch.uint8, generator=generator)
    return data.view(dtype).reshape(shape)


def describe(tensors, metadata):
    return {
        "metadata": metadata or {},
        "tensors": {name: {"dtype": NAMES[t.dtype], "shape": list(t.shape), "hex": raw_bytes(t).hex()}
                    for name, t in tensors.items()},
    }


def random_state(seed):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(3, 5), (7,), (2, 3, 4), (), (0, 3), (1, 1, 9)]
    tensors = {}
    for i, (name, dtype) in enumerate(DTYPES.items()):
        tensors[f"model.layers.{i}.{name.lower()}.weight"] = random_tensor(dtype, shapes[i % len(shapes)], generator)
    tensors["model.embed_tokens.weight"] = random_tensor(torch.bfloat16, (11, 6), generator)
    return tensors


def write(out, seed):
    tensors = random_state(seed)
    metadata = {"format": "pt", "qerl": "peer", "seed": str(seed), "ünïcode": "ok"}
    save_file(tensors, os.path.join(out, "py_all.safetensors"), metadata=metadata)
    json.dump(describe(tensors, metadata), open(os.path.join(out, "py_all.expected.json"), "w"))
    save_file(tensors, os.path.join(out, "py_one.safetensors"), metadata={"format": "pt"})

    # A sharded checkpoint exactly as transformers' save_pretrained writes it.
    hf = os.path.join(out, "hf")
    os.makedirs(hf, exist_ok=True)
    state = dict(sorted(random_state(seed + 1).items()))
    split = split_torch_state_dict_into_shards(state, max_shard_size=200)
    assert split.is_sharded, "the peer checkpoint must be sharded"
    for file, names in split.filename_to_tensors.items():
        save_file({name: state[name] for name in names}, os.path.join(hf, file), metadata={"format": "pt"})
    index = {"metadata": {"total_parameters": sum(t.numel() for t in state.values()), **split.metadata},
             "weight_map": split.tensor_to_filename}
    with open(os.path.join(hf, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    with open(os.path.join(hf, "config.json"), "w") as f:
        f.write(json.dumps({"model_type": "qwen2", "hidden_size": 6}, indent=2, sort_keys=True) + "\n")
    json.dump(describe(state, None), open(os.path.join(out, "hf.expected.json"), "w"))


def fail(message):
    print(f"safetensors_peer.py: {message}")
    sys.exit(1)


def check(file, expected_file):
    expected = json.load(open(expected_file))
    tensors = load_file(file)
    with safe_open(file, framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata != expected["metadata"]:
        fail(f"{file}: metadata {metadata} != {expected['metadata']}")
    if sorted(tensors) != sorted(expected["tensors"]):
        fail(f"{file}: tensor names {sorted(tensors)} != {sorted(expected['tensors'])}")
    for name, t in tensors.items():
        want = expected["tensors"][name]
        got = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "hex": raw_bytes(t).hex()}
        if got != want:
            fail(f"{file}: tensor '{name}' differs: {got['dtype']}{got['shape']} vs {want['dtype']}{want['shape']}")


def resave(file, out):
    with safe_open(file, framework="pt") as f:
        metadata = f.metadata()
    save_file(load_file(file), out, metadata=metadata)


def check_hf(folder, max_bytes):
    index_file = os.path.join(folder, "model.safetensors.index.json")
    text = open(index_file).read()
    index = json.loads(text)
    state = {}
    for file in sorted(set(index["weight_map"].values())):
        state.update(load_file(os.path.join(folder, file)))
    state = dict(sorted(state.items()))
    split = split_torch_state_dict_into_shards(state, max_shard_size=max_bytes)
    if index["weight_map"] != split.tensor_to_filename:
        fail(f"{index_file}: weight_map differs from huggingface_hub's split")
    if index["metadata"] != split.metadata:
        fail(f"{index_file}: metadata {index['metadata']} != {split.metadata}")
    if text != json.dumps(index, indent=2, sort_keys=True) + "\n":
        fail(f"{index_file}: not formatted as json.dumps(indent=2, sort_keys=True)")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"write": lambda: write(args[0], int(args[1])),
     "check": lambda: check(args[0], args[1]),
     "resave": lambda: resave(args[0], args[1]),
     "check_hf": lambda: check_hf(args[0], int(args[1]))}[command]()
