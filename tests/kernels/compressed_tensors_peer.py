"""Peer side of the NVFP4 / MXFP4 parity test (peer_parity_test.cpp).

compressed-tensors is the reference: given a seed, this script builds seeded
2-D weights (Gaussian at several scales, zero blocks, an all-zero tensor,
tiny and subnormal values, values exactly on every E2M1 rounding tie,
outliers, negatives, -0.0, MXFP4 group maxima around the 1.75 rule, a shared
fused global scale), in float32 and bfloat16, and writes them with what
compressed-tensors makes of them to one safetensors file:

  python compressed_tensors_peer.py OUT SEED

Names: "<format>.<case>.<dtype>.<field>", format nvfp4 | mxfp4, dtype f32 |
bf16, field input | packed | scale | global_scale | given_global_scale |
dequant | fake. Scales and zero points come from compressed-tensors'
generate_gparam and compute_dynamic_scales_and_zp with the reductions in the
weight's dtype (as its dynamic path and llm-compressor's observers run
them); packing from the NVFP4 / MXFP4 compressors; dequant from dequantize()
in the weight's dtype (checked here against the compressors' decompress(),
which always gives bf16); fake from fake_quantize(). Exit 0 on success.
"""
import sys

import torch
from compressed_tensors.compressors.mxfp4.base import MXFP4PackedCompressor
from compressed_tensors.compressors.nvfp4.base import NVFP4PackedCompressor
from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
from compressed_tensors.compressors.mx_utils import decompress_mx_scale
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.lifecycle.forward import dequantize, fake_quantize
from compressed_tensors.quantization.utils import compute_dynamic_scales_and_zp, generate_gparam
from safetensors.torch import save_file

NVFP4_ARGS = QuantizationArgs(num_bits=4, type="float", strategy="tensor_group", symmetric=True, dynamic=False,
                              group_size=16, scale_dtype=torch.float8_e4m3fn, zp_dtype=torch.float8_e4m3fn)
MXFP4_ARGS = QuantizationArgs(num_bits=4, type="float", strategy="group", symmetric=True, dynamic=False,
                              group_size=32, scale_dtype=torch.uint8, zp_dtype=torch.uint8)
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
# Every E2M1 rounding tie (midpoints between neighbouring magnitudes).
TIES = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]


def fail(message):
    print(f"compressed_tensors_peer.py: {message}")
    sys.exit(1)


def gaussian(g, rows, cols, std=1.0):
    return torch.randn(rows, cols, generator=g) * std


def row_scaled(g, rows, cols):
    # one scale per row, 10^-3 .. 10^2
    exponents = torch.rand(rows, 1, generator=g) * 5 - 3
    return gaussian(g, rows, cols) * torch.pow(10.0, exponents)


def zero_blocks(g, rows, cols, group):
    w = gaussian(g, rows, cols, 0.05)
    for r in range(0, rows, 2):
        b = int(torch.randint(0, cols // group, (1,), generator=g))
        w[r, b * group:(b + 1) * group] = 0.0
    w[rows - 1] = 0.0  # a whole zero row
    return w


def tiny(g, rows, cols, group):
    w = gaussian(g, rows, cols, 1e-30)
    w[0] = gaussian(g, 1, cols, 1e-39)[0]  # fp32 subnormals
    w[1, :group] = torch.tensor([1e-45, -1e-45, 1e-41, -3e-40] * (group // 4))
    return w


def mixed_tiny(g, rows, cols, group):
    # normal values with one block of tiny / subnormal ones: scales underflow
    w = gaussian(g, rows, cols)
    w[0, :group] = gaussian(g, 1, group, 1e-30)[0]
    w[1, :group] = gaussian(g, 1, group, 1e-39)[0]
    w[2, :group] = gaussian(g, 1, group, 1e-4)[0]
    return w


def subnormal_elements(g, rows, cols):
    # normal group maxima with bf16 / fp32 subnormal elements: x / scale can
    # underflow, and whether it rounds to -0.0 decides the sign bit
    w = gaussian(g, rows, cols, 10.0)
    tiny_values = torch.tensor([2.0 ** -133, 3 * 2.0 ** -133, 2.0 ** -130, 1e-39, 1e-45, 2.0 ** -126])
    for r in range(rows):
        picks = tiny_values[torch.randint(0, len(tiny_values), (cols // 2,), generator=g)]
        signs = torch.where(torch.rand(cols // 2, generator=g) < 0.5, -1.0, 1.0)
        w[r, 1::2] = picks * signs
    return w


def outliers(g, rows, cols):
    w = gaussian(g, rows, cols, 0.01)
    idx = torch.randint(0, rows * cols, (max(1, rows * cols // 50),), generator=g)
    w.view(-1)[idx] *= 1e4
    return w


def negatives(g, rows, cols):
    w = -gaussian(g, rows, cols).abs()
    w[0, 0] = -0.0
    w[0, 3] = -1e-3
    return w


def ties_row(amax, unit, group):
    # amax first, then every tie (and its neighbours) times `unit`, both signs
    values = [amax]
    for t in TIES:
        for v in (t, float(torch.nextafter(torch.tensor(t), torch.tensor(0.0))),
                  float(torch.nextafter(torch.tensor(t), torch.tensor(10.0)))):
            values += [v * unit, -v * unit]
    values += [0.0, -0.0, 6.0 * unit, -6.0 * unit, 7.0 * unit]
    row = (values * group)[:group]
    return row


def ties_tensor(group, amax, unit, rows=4):
    rows_out = []
    for r in range(rows):
        row = ties_row(amax if r % 2 == 0 else -amax, unit, group * 2)
        rows_out.append(row[r:] + row[:r])  # shift so ties land at every position
    return torch.tensor(rows_out, dtype=torch.float32)


def exact_ties(dtype):
    # NVFP4 elements x whose x / (s / G) is exactly each E2M1 tie, and the
    # next 3 floats of `dtype` either side, with the G and block scales that
    # compressed-tensors computes (G is not a power of two): this separates
    # x / (s / G) from x * (G / s) and from any other order of operations.
    maxima = [6 * 1.37, 3.3, 0.77, 0.021]
    cols = 16 * 7
    skeleton = torch.zeros(len(maxima), cols)
    skeleton[:, ::16] = torch.tensor(maxima)[:, None]
    skeleton = skeleton.to(dtype)
    global_scale = generate_gparam(*torch.aminmax(skeleton))
    scale = compute_dynamic_scales_and_zp(value=skeleton, args=NVFP4_ARGS, module=None,
                                          global_scale=global_scale)[0]
    units = scale[:, 0].float() / global_scale  # the op compressed-tensors' quantize runs
    int_dtype = torch.int16 if dtype == torch.bfloat16 else torch.int32
    w = skeleton.clone()
    for r in range(len(maxima)):
        candidates = []
        for t in TIES:
            x0 = (torch.tensor([t]) * units[r]).to(dtype)
            for k in range(-3, 4):
                x = (x0.view(int_dtype) + k).view(dtype)
                candidates += [x, -x]
        flat = torch.cat(candidates)
        slots = [c for c in range(cols) if c % 16 != 0]
        w[r, slots] = flat[:len(slots)] if len(flat) >= len(slots) else flat.repeat(2)[:len(slots)]
    return w


def mx_rule_edges(g):
    # group maxima just below, at and above significand 1.75, at several exponents
    w = gaussian(g, 8, 64, 0.1)
    maxima = [7.0, 7.5, 6.999, 1.75, 1.7499999, 3.5, 14.0, 0.875, 6.0, 1.0, 0.4375, 1e-3 * 1.75,
              2.0 ** -126 * 1.75, 2.0 ** -127 * 1.5, 2.0 ** 100 * 1.8, 0.0]
    for i, m in enumerate(maxima):
        r, b = divmod(i, 2)
        w[r, b * 32:(b + 1) * 32] *= (m / 0.5)
        w[r, b * 32] = m
    return w


def nvfp4(w, given_global_scale=None):
    if given_global_scale is None:
        lo, hi = torch.aminmax(w)
        global_scale = generate_gparam(lo, hi)
    else:
        global_scale = given_global_scale
    scale, zero_point = compute_dynamic_scales_and_zp(value=w, args=NVFP4_ARGS, module=None,
                                                      global_scale=global_scale)
    scheme = QuantizationScheme(targets=["Linear"], weights=NVFP4_ARGS)
    compressed = NVFP4PackedCompressor.compress(
        {"weight": w, "weight_scale": scale, "weight_zero_point": zero_point,
         "weight_global_scale": global_scale}, scheme)
    packed, scale_fp8 = compressed["weight_packed"], compressed["weight_scale"]
    m, n = w.shape
    dequant = dequantize(x_q=unpack_fp4_from_uint8(packed, m, n, dtype=w.dtype), scale=scale_fp8.to(w.dtype),
                         args=NVFP4_ARGS, global_scale=global_scale, dtype=w.dtype)
    decompressed = NVFP4PackedCompressor.decompress(dict(compressed), scheme)["weight"]
    if w.dtype == torch.bfloat16 and not same_bits(decompressed, dequant):
        fail("nvfp4: decompress() and dequantize() disagree")
    fake = fake_quantize(x=w, scale=scale, zero_point=None, args=NVFP4_ARGS, global_scale=global_scale)
    return {"packed": packed, "scale": scale_fp8, "global_scale": global_scale.reshape(1).float(),
            "dequant": dequant, "fake": fake}


def mxfp4(w):
    scale, zero_point = compute_dynamic_scales_and_zp(value=w, args=MXFP4_ARGS, module=None)
    scheme = QuantizationScheme(targets=["Linear"], weights=MXFP4_ARGS)
    compressed = MXFP4PackedCompressor.compress({"weight": w, "weight_scale": scale,
                                                 "weight_zero_point": zero_point}, scheme)
    packed, codes = compressed["weight_packed"], compressed["weight_scale"]
    m, n = w.shape
    dequant = dequantize(x_q=unpack_fp4_from_uint8(packed, m, n, dtype=w.dtype),
                         scale=decompress_mx_scale(codes).to(w.dtype), args=MXFP4_ARGS, dtype=w.dtype)
    decompressed = MXFP4PackedCompressor.decompress(dict(compressed), scheme)["weight"]
    if w.dtype == torch.bfloat16 and not same_bits(decompressed, dequant):
        fail("mxfp4: decompress() and dequantize() disagree")
    fake = fake_quantize(x=w, scale=scale, zero_point=None, args=MXFP4_ARGS)
    return {"packed": packed, "scale": codes, "dequant": dequant, "fake": fake}


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def cases(seed):
    g = torch.Generator().manual_seed(seed)
    nv = {
        "gauss_4x32": gaussian(g, 4, 32, 0.02),
        "gauss_16x64": row_scaled(g, 16, 64),
        "gauss_7x96": gaussian(g, 7, 96, 3.0),
        "zero_blocks": zero_blocks(g, 6, 64, 16),
        "all_zero": torch.zeros(4, 32),
        "tiny": tiny(g, 4, 32, 16),
        "below_tiny": gaussian(g, 2, 32, 1e-37),
        "mixed_tiny": mixed_tiny(g, 4, 48, 16),
        "outliers": outliers(g, 8, 64),
        "negatives": negatives(g, 5, 32),
        "subnormal_elements": subnormal_elements(g, 4, 32),
    }
    mx = {
        "gauss_4x32": gaussian(g, 4, 32, 0.02),
        "gauss_16x64": row_scaled(g, 16, 64),
        "gauss_7x96": gaussian(g, 7, 96, 3.0),
        "zero_blocks": zero_blocks(g, 6, 64, 32),
        "all_zero": torch.zeros(4, 32),
        "tiny": tiny(g, 4, 32, 32),
        "mixed_tiny": mixed_tiny(g, 4, 64, 32),
        "outliers": outliers(g, 8, 64),
        "negatives": negatives(g, 5, 32),
        "subnormal_elements": subnormal_elements(g, 4, 64),
        "ties": ties_tensor(32, amax=48.0, unit=8.0),  # scale 2^3 under both rules
        "rule_edges": mx_rule_edges(g),
    }
    # NVFP4 ties, exactly: a given G = 1 and block maxima of 6 make s / G = 1.
    nv_given = {"ties_given_g": (ties_tensor(16, amax=6.0, unit=1.0), 1.0)}
    # Fused siblings: the shared G is the minimum of the two.
    a, b = gaussian(g, 8, 32, 0.5), gaussian(g, 8, 32, 2.0)
    nv_given["fused_min_g"] = (a, min(float(generate_gparam(*torch.aminmax(a))),
                                      float(generate_gparam(*torch.aminmax(b)))))
    return g, nv, nv_given, mx


def main(out, seed):
    g, nv, nv_given, mx = cases(seed)
    tensors = {}
    for dname, dtype in DTYPES.items():
        for name, w in nv.items():
            x = w.to(dtype)
            key = f"nvfp4.{name}.{dname}"
            tensors[f"{key}.input"] = x
            for field, t in nvfp4(x).items():
                tensors[f"{key}.{field}"] = t
        key = f"nvfp4.ties_computed_g.{dname}"
        x = exact_ties(dtype)
        tensors[f"{key}.input"] = x
        for field, t in nvfp4(x).items():
            tensors[f"{key}.{field}"] = t
        for name, (w, given) in nv_given.items():
            x = w.to(dtype)
            key = f"nvfp4.{name}.{dname}"
            tensors[f"{key}.input"] = x
            tensors[f"{key}.given_global_scale"] = torch.tensor([given], dtype=torch.float32)
            for field, t in nvfp4(x, torch.tensor([given], dtype=torch.float32)).items():
                tensors[f"{key}.{field}"] = t
        for name, w in mx.items():
            x = w.to(dtype)
            key = f"mxfp4.{name}.{dname}"
            tensors[f"{key}.input"] = x
            for field, t in mxfp4(x).items():
                tensors[f"{key}.{field}"] = t
    save_file({k: v.contiguous() for k, v in tensors.items()}, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
