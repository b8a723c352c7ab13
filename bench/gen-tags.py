#!/usr/bin/env python3
"""Writes N mixed container tags, deterministic for a seed: semver releases
(some with v, prereleases, build metadata), CI tags main-<sha>-<ts>, and noise."""
import random, sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 42)
hexd = "0123456789abcdef"
out = []
for i in range(n):
    k = rnd.random()
    if k < 0.5:
        v = f"{rnd.randrange(60)}.{rnd.randrange(100)}.{rnd.randrange(300)}"
        if rnd.random() < 0.3:
            v = "v" + v
        if rnd.random() < 0.15:
            v += f"-rc.{rnd.randrange(10)}"
        elif rnd.random() < 0.05:
            v += f"+build.{rnd.randrange(1000)}"
        out.append(v)
    elif k < 0.85:
        sha = "".join(rnd.choice(hexd) for _ in range(8))
        out.append(f"main-{sha}-{1600000000 + rnd.randrange(100_000_000)}")
    else:
        out.append("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz-_.0123456789") for _ in range(rnd.randrange(3, 20))))
sys.stdout.write("\n".join(out) + "\n")
