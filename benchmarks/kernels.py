"""Micro-benchmark of the fused Triton kernels (row log-sum-exp, T @ Z, transport cost, top-k) on one GPU.

Measures each kernel's time (median of Triton's ``do_bench``) on random features of N = K rows and
d columns, per precision, and its relative error against the float64 torch reference
(``gwalign.engine.stream``) on the first 2048 rows. Per call: 2·N·K·d flops for the feature
products and N·K exponentials (apply adds 2·N·K·m for the product with Z, the cost kernel 2·N·K·d
for the cost features). TFLOP/s counts the useful d, not the padded tile width. ``--sweep`` also
times other (BLOCK_M, BLOCK_N, warps) for the LSE kernel; ``--tiles`` other feature chunkings.

Prints the GPU, torch and Triton versions, then a Markdown table: kernel, N, d (feature tiles),
precision, launch configuration, ms, TFLOP/s, Gexp/s, relative error against float64.

Needs a CUDA GPU (it always runs on ``cuda``):

    python benchmarks/kernels.py --sizes 45000 200000 --dims 32 64 80 --precisions tf32 tf32x3 --sweep
    python benchmarks/kernels.py --sizes 20000 --dims 64 --precisions tf32 --rounded
"""

from __future__ import annotations

import argparse

import torch
import triton

from gwalign.engine import logsumexp, stream
from gwalign.engine.plan import FactoredPlan
from gwalign.engine.precision import round_to_tf32
from gwalign.kernels.lse import launch_config, lse_rows_triton
from gwalign.kernels.tiles import feature_split, multiprocessors
from gwalign.kernels.apply import apply_triton
from gwalign.kernels.topk import topk_triton
from gwalign.kernels.transport_cost import transport_cost_triton

SWEEP = [(16, 64, 4), (32, 64, 4), (32, 128, 4), (64, 64, 4), (128, 64, 4), (128, 64, 8), (64, 128, 4), (128, 128, 8),
         (256, 64, 8), (256, 128, 8), (256, 32, 8)]


def bench(fn) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--precisions", nargs="+", default=["tf32", "tf32x3", "ieee"])
    parser.add_argument("--z-width", type=int, default=32, help="columns of Z for the apply kernel")
    parser.add_argument("--sweep", action="store_true", help="time other launch configurations of the LSE kernel")
    parser.add_argument("--tiles", nargs="*", default=[], metavar="MAIN+TAIL",
                        help="other feature chunkings of the LSE kernel to time, e.g. 128+0 64+32")
    parser.add_argument("--rounded", action="store_true",
                        help="round the features to tf32 first, as sampled GW does (gwalign.engine.precision)")
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__}"
          + (", features rounded to tf32" if args.rounded else ""))
    print("| kernel | N = K | d (tiles) | precision | config | ms | TFLOP/s | Gexp/s | rel. error vs fp64 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for d in args.dims:
            gen = torch.Generator(device=device).manual_seed(0)
            x = torch.randn(n, d, device=device, generator=gen) * 0.1
            y = torch.randn(n, d, device=device, generator=gen) * 0.1
            bias = torch.randn(n, device=device, generator=gen) * 0.01
            if args.rounded:
                x, y = round_to_tf32(x), round_to_tf32(y)
            eps = 0.05
            tiles = "+".join(str(w) for w in feature_split(d) if w)
            check = slice(0, 2048)
            ref = logsumexp.lse_rows_reference(x[check].double(), y.double(), bias.double(), eps, None, 512, 65536)
            # A normalised plan for apply / cost: rows sum to 1/n.
            p = -eps * lse_rows_triton(x, y, bias, eps, "tf32x3") - eps * torch.log(torch.tensor(float(n)))
            plan64 = FactoredPlan(u=x[check].double(), v=y.double(), p=p[check].double(), q=bias.double(), eps=eps,
                                  block_rows=512, block_cols=65536)
            z = torch.randn(n, args.z_width, device=device, generator=gen)
            ref_apply = stream.apply_reference(plan64, z.double())
            ref_cost = float(stream.transport_cost_reference(plan64, x[check].double(), y.double()))
            for precision in args.precisions:
                configs = [launch_config(sum(feature_split(d)), precision, n, multiprocessors(device))] + \
                    (SWEEP if args.sweep else [])
                for tiling in [tuple(int(w) for w in t.split("+")) for t in args.tiles]:
                    if sum(tiling) < d:
                        continue
                    config = launch_config(sum(tiling), precision, n, multiprocessors(device))
                    ms = bench(lambda: lse_rows_triton(x, y, bias, eps, precision=precision, blocks=config,
                                                       tiles=tiling))
                    print(f"| lse | {n:,} | {d} ({tiling[0]}+{tiling[1]}) | {precision} | {config} | {ms:.2f} | "
                          f"{2.0 * n * n * d / ms / 1e9:.1f} | {n * n / ms / 1e6:.0f} | – |", flush=True)
                for config in dict.fromkeys(configs):
                    got = lse_rows_triton(x, y, bias, eps, precision=precision, blocks=config)
                    err = float((got[check].double() - ref).norm() / ref.norm())
                    ms = bench(lambda: lse_rows_triton(x, y, bias, eps, precision=precision, blocks=config))
                    print(f"| lse | {n:,} | {d} ({tiles}) | {precision} | {config} | {ms:.2f} | "
                          f"{2.0 * n * n * d / ms / 1e9:.1f} | {n * n / ms / 1e6:.0f} | {err:.1e} |", flush=True)
                got = apply_triton(x, y, p, bias, eps, z, precision)
                err = float((got[check].double() - ref_apply).norm() / ref_apply.norm())
                ms = bench(lambda: apply_triton(x, y, p, bias, eps, z, precision))
                flops = 2.0 * n * n * (d + args.z_width)
                print(f"| apply (m={args.z_width}) | {n:,} | {d} ({tiles}) | {precision} | default | {ms:.2f} | "
                      f"{flops / ms / 1e9:.1f} | {n * n / ms / 1e6:.0f} | {err:.1e} |", flush=True)
                got_cost = transport_cost_triton(x[check], y, p[check], bias, eps, x[check], y, precision)
                err = abs(got_cost - ref_cost) / abs(ref_cost)
                ms = bench(lambda: transport_cost_triton(x, y, p, bias, eps, x, y, precision))
                print(f"| cost | {n:,} | {d} ({tiles}) | {precision} | default | {ms:.2f} | "
                      f"{4.0 * n * n * d / ms / 1e9:.1f} | {n * n / ms / 1e6:.0f} | {err:.1e} |", flush=True)
                values, _ = topk_triton(x[check], y, p[check], bias, eps, 10, precision)
                ref_top, _ = stream.topk_rows_reference(plan64, 10)
                err = float(((values.double() - ref_top).abs() / ref_top).max())
                ms = bench(lambda: topk_triton(x, y, p, bias, eps, 10, precision))
                print(f"| top-10 | {n:,} | {d} ({tiles}) | {precision} | default | {ms:.2f} | "
                      f"{2.0 * n * n * d / ms / 1e9:.1f} | – | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
