"""Benchmark ``rlvr/MultiHop-v0`` task generation at contexts of about 1k, 10k, 100k and 200k
characters, side by side with reasoning-gym's ``family_relationships`` (the closest peer: a
seeded multi-hop kinship generator, with short stories and no distractor tiers).

For every target length (difficulty 0, 2, 4, 5: 2, 3, 4, 4 hops) it times, over distinct
seeds, the median of:

* ``generate``: the task alone (graph, walk, twins, tiers, passages, uniqueness check);
* ``reset context`` / ``reset search``: ``env.reset`` in each mode (generation plus the
  rendered observation, and the BM25 index in search mode);
* ``solve``: the scripted solver's context-mode reply (parsing every passage).

The peer is timed per generated item (``reasoning_gym.create_dataset`` + indexing), and the
ratio to our 1k-character generation is printed. Timings are never put in ``info``.

    python benchmarks/bench_multihop.py           # about a minute on 2 cores
    python benchmarks/bench_multihop.py --quick   # a few seconds
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable

from rlvr.agents.scripted.multihop import MultiHopSolver
from rlvr.envs import Message
from rlvr.envs.multihop.env import MultiHopEnv

TARGETS = ((1_000, 0), (10_000, 2), (100_000, 4), (200_000, 5))
"""(target characters, difficulty): the difficulty sets the hop count and the target."""


def median_ms(run: Callable[[int], object], seeds: range) -> float:
    """Median wall time of ``run(seed)`` over ``seeds``, in milliseconds."""
    times = []
    for seed in seeds:
        start = time.perf_counter()
        run(seed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_level(level: int, repeats: int) -> dict[str, float]:
    """The timings of one difficulty level, plus the median context size."""
    context = MultiHopEnv(difficulty=level)
    search = MultiHopEnv(difficulty=level, mode="search")
    solver = MultiHopSolver()
    seeds = range(1000, 1000 + repeats)

    def generate(seed: int) -> object:
        return context.generate_task(f"multihop-d{level}-s{seed}", level, random.Random(seed))

    dialogues = []
    for seed in seeds:
        observation, info = context.reset(seed=seed)
        dialogues.append(
            (info["context_chars"], [Message("system", ""), Message("user", observation)])
        )
    return {
        "chars": statistics.median(size for size, _ in dialogues),
        "generate": median_ms(generate, seeds),
        "reset context": median_ms(lambda s: context.reset(seed=s), seeds),
        "reset search": median_ms(lambda s: search.reset(seed=s), seeds),
        "solve": median_ms(lambda i: solver(dialogues[i][1]), range(len(dialogues))),
    }


def bench_peer(items: int) -> float | None:
    """Median ms per reasoning-gym ``family_relationships`` item, or ``None`` if missing."""
    try:
        import reasoning_gym
    except ImportError:
        return None

    def one_batch(seed: int) -> object:
        dataset = reasoning_gym.create_dataset("family_relationships", size=items, seed=seed)
        return [dataset[i] for i in range(items)]

    return median_ms(one_batch, range(5)) / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    header = ("target", "chars", "generate", "reset ctx", "reset search", "solve", "kchar/s")
    print(" | ".join(f"{h:>12}" for h in header))
    ours_1k = 0.0
    for target, level in TARGETS:
        repeats = (3 if args.quick else 15) if target >= 100_000 else (5 if args.quick else 31)
        row = bench_level(level, repeats)
        ours_1k = ours_1k or row["generate"]
        rate = row["chars"] / row["generate"]  # characters per ms = thousands per second
        cells = (
            f"{target:,}",
            f"{row['chars']:,.0f}",
            f"{row['generate']:.1f} ms",
            f"{row['reset context']:.1f} ms",
            f"{row['reset search']:.1f} ms",
            f"{row['solve']:.1f} ms",
            f"{rate:,.0f}",
        )
        print(" | ".join(f"{c:>12}" for c in cells))
    peer = bench_peer(20 if args.quick else 100)
    if peer is None:
        print("reasoning-gym is not installed: no peer figure (pip install 'rlvr-gym[bench]')")
    else:
        print(
            f"reasoning-gym family_relationships: {peer:.2f} ms/item; "
            f"rlvr MultiHop at ~1k chars: {ours_1k:.2f} ms/task (ratio {ours_1k / peer:.2f}x)"
        )


if __name__ == "__main__":
    main()
