"""Next-object loss at catalogue scale: full softmax vs sampled softmax, time per training step.

Run: python benchmarks/sampled_softmax.py [--objects 100000] [--negatives 512] [--repeats 5]

One forward + backward of the next-object loss for a batch of hidden states (128 sequences x 16 loss
positions, d = 64), on this CPU with 2 threads; median of the repeats. The sampled loss scores the
target and n shared negatives instead of every object.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lam_platform.lightning_modules.config import LAMConfig
from lam_platform.lightning_modules.model import NextActionHead


def step_seconds(
    head: NextActionHead, hidden: torch.Tensor, targets: torch.Tensor, negatives: int, repeats: int
) -> float:
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        head.zero_grad(set_to_none=True)
        head.object_loss(hidden, targets, negatives).backward()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--negatives", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    head = NextActionHead(LAMConfig(d_model=64, n_heads=4, n_objects=args.objects))
    hidden = torch.randn(128 * 16, 64, requires_grad=True)
    targets = torch.randint(2, args.objects, (128 * 16,))
    full = step_seconds(head, hidden, targets, 0, args.repeats)
    sampled = step_seconds(head, hidden, targets, args.negatives, args.repeats)
    print(f"{args.objects:,} objects, {hidden.shape[0]:,} loss positions per step, median of {args.repeats}")
    print(f"  full softmax                  {full * 1e3:8.1f} ms/step")
    print(f"  sampled, {args.negatives} negatives        {sampled * 1e3:8.1f} ms/step   {full / sampled:.1f}x faster")


if __name__ == "__main__":
    main()
