"""Micro-benchmark of the fused row log-sum-exp kernel against the floor in DESIGN.md.

Per call: 2·N·K·d flops for the products (plus the bias add) and N·K exponentials.

    python benchmarks/kernels.py --sizes 20000 200000 --dims 64 128 --precisions ieee tf32
"""

from __future__ import annotations

import argparse

import torch
import triton

from gwalign.engine import stream
from gwalign.kernels.lse import lse_rows_triton


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--precisions", nargs="+", default=["tf32", "tf32x3", "ieee"])
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__}")
    print("| N = K | d | precision | ms | TFLOP/s (2NKd) | Gexp/s | rel. error vs fp64 |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for d in args.dims:
            gen = torch.Generator(device=device).manual_seed(0)
            x = torch.randn(n, d, device=device, generator=gen) * 0.1
            y = torch.randn(n, d, device=device, generator=gen) * 0.1
            bias = torch.randn(n, device=device, generator=gen) * 0.01
            eps = 0.05
            check = slice(0, 2048)
            ref = stream.lse_rows_reference(x[check].double(), y.double(), bias.double(), eps, None, 512, 65536)
            for precision in args.precisions:
                got = lse_rows_triton(x, y, bias, eps, precision=precision)
                err = float((got[check].double() - ref).norm() / ref.norm())
                ms = triton.testing.do_bench(lambda: lse_rows_triton(x, y, bias, eps, precision=precision),
                                             warmup=50, rep=300, return_mode="median")
                flops = 2.0 * n * n * d / (ms * 1e-3) / 1e12
                exps = n * n / (ms * 1e-3) / 1e9
                print(f"| {n:,} | {d} | {precision} | {ms:.2f} | {flops:.1f} | {exps:.0f} | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
