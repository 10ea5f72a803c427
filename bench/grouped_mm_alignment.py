"""Checks LibTorch's torch._grouped_mm gradients against a per-group fp32
reference, with expert groups that start off and on 8-row boundaries.

Why: qerl's differentiable grouped MoE path (models/nn/sparse_moe.cpp) hands
_grouped_mm expert groups of any size and start (no padding to 8 rows, as
torchtitan does), and LoRA's rank-8/16 projections as narrow GEMMs. This
checks that assumption: for each layout and GEMM shape it prints the relative
error of the output, the input gradient and the weight gradient. On an H100
with torch 2.11 (2026-12-06) every case measured 1.6e-3 to 1.7e-3, bf16
rounding, whether aligned or not. Needs a CUDA GPU (sm_90 for the CUTLASS path).
usage: python3 bench/grouped_mm_alignment.py
"""
import torch


def check(counts, seed=0, in_features=256, out_features=64):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    experts, rows = len(counts), sum(counts)
    x = torch.randn(rows, in_features, device="cuda", generator=gen).bfloat16().requires_grad_()
    w = torch.randn(experts, out_features, in_features, device="cuda", generator=gen).bfloat16().requires_grad_()
    grad_y = torch.randn(rows, out_features, device="cuda", generator=gen).bfloat16()
    ends = torch.tensor(counts, device="cuda").cumsum(0).to(torch.int32)
    y = torch._grouped_mm(x, w.transpose(1, 2), ends)
    y.backward(grad_y)
    # fp32 reference, one matmul per group.
    xf, wf, gf = x.detach().float(), w.detach().float(), grad_y.float()
    ref_y, ref_gx, ref_gw = torch.zeros_like(gf), torch.zeros_like(xf), torch.zeros_like(wf)
    start = 0
    for e, n in enumerate(counts):
        sl = slice(start, start + n)
        ref_y[sl] = xf[sl] @ wf[e].T
        ref_gx[sl] = gf[sl] @ wf[e]
        ref_gw[e] = gf[sl].T @ xf[sl]
        start += n

    def rel(a, b):
        return ((a.float() - b).norm() / b.norm()).item()

    return rel(y, ref_y), rel(x.grad, ref_gx), rel(w.grad, ref_gw)


def main():
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    layouts = {
        "unaligned (5, 0, 13, 8, 21, 3, 16, 9)": [5, 0, 13, 8, 21, 3, 16, 9],
        "unaligned, no empty group (5, 7, 13, 8, 21, 3, 16, 9)": [5, 7, 13, 8, 21, 3, 16, 9],
        "8-aligned (8, 8, 16, 8, 24, 8, 16, 16)": [8, 8, 16, 8, 24, 8, 16, 16],
    }
    print("| groups | in x out | rel. err. y | rel. err. dx | rel. err. dW |")
    print("|---|---|---|---|---|")
    for name, counts in layouts.items():
        # LoRA's low-rank projections make narrow GEMMs: rank 8 or 16 as K or N.
        for in_features, out_features in [(256, 64), (64, 8), (8, 64), (64, 16), (16, 64), (2048, 16), (16, 1408)]:
            ey, ex, ew = check(counts, in_features=in_features, out_features=out_features)
            print(f"| {name} | {in_features} x {out_features} | {ey:.2e} | {ex:.2e} | {ew:.2e} |")

if __name__ == "__main__":
    main()
