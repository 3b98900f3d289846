#!/usr/bin/env python3
"""The long fuzz run: every target of tests/fuzz/ (or the ones named) for --seconds each,
with a fresh random seed, recording every distinct finding instead of stopping at the first.

CI runs the same targets for a few seconds each (`cargo nextest run --release --test fuzz`);
this is the run to do before a release or after touching a parser. Each target runs in its
own process, `--jobs` at a time; findings land in fuzz/findings/<target>/ (a case that
panicked, allocated far more than its input, or ran too long). Once a finding is fixed, copy
its input to fuzz/corpus/<target>/regress-<name> so CI replays it from then on.

Usage: python3 bench/fuzz.py [--seconds 300] [--jobs 2] [--seed N] [target ...]
Exit status: 0 when no target found anything.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_binary():
    """Builds the fuzz test binary (release) and returns its path."""
    out = subprocess.run(
        ["cargo", "test", "--release", "--test", "fuzz", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "fuzz" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("no fuzz test binary was built")


def targets(binary):
    out = subprocess.run([binary, "--list"], check=True, stdout=subprocess.PIPE, text=True).stdout
    names = [line.split(":")[0] for line in out.splitlines() if line.endswith(": test")]
    return [n for n in names if "::" not in n and not n.startswith("the_")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300, help="mutation time per target")
    ap.add_argument("--jobs", type=int, default=2, help="targets run at once")
    ap.add_argument("--seed", type=int, help="PRNG seed (default: random, printed)")
    ap.add_argument("names", nargs="*", help="targets (default: all)")
    args = ap.parse_args()

    binary = test_binary()
    names = args.names or targets(binary)
    seed = args.seed if args.seed is not None else random.randrange(1 << 63)
    print(f"fuzz: {len(names)} targets x {args.seconds:.0f} s, seed {seed}, {args.jobs} at a time", flush=True)
    env = dict(os.environ, FUZZ_SECONDS=str(args.seconds), FUZZ_SEED=str(seed), FUZZ_KEEP_GOING="1")
    pending = list(names)
    running = {}
    results = {}
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            proc = subprocess.Popen([binary, "--exact", name, "--nocapture", "--test-threads", "1"],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            running[name] = (proc, time.time())
        time.sleep(0.5)
        for name, (proc, started) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            output = proc.stdout.read()
            lines = [l for l in output.splitlines() if l.startswith("fuzz ") or l.startswith("  ")]
            results[name] = proc.returncode
            status = "ok" if proc.returncode == 0 else f"FOUND (exit {proc.returncode})"
            print(f"== {name}: {status} after {time.time() - started:.0f} s", flush=True)
            for line in lines:
                print("   " + line, flush=True)
            if proc.returncode not in (0, 101):
                # Aborted (an allocation refused, a stack overflow) or ended by the watchdog.
                tail = output.strip().splitlines()[-5:]
                print("   last output: " + " | ".join(tail), flush=True)
    bad = [n for n, rc in results.items() if rc != 0]
    print(f"fuzz: {len(results) - len(bad)} clean, {len(bad)} with findings {bad}; inputs in fuzz/findings/")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
