"""Time of the bare call ``initialize(model, sample=x)`` against one forward pass of the sample.

Each case runs in a fresh Python process (what a user's script pays: no cache in memory; the
engine's kept choices and the compiled kernels of ``~/.cache/spikeinit`` are whatever this
machine has), which times one forward pass of the sample without gradients (the reference,
best of two after a warm-up) and then the first ``initialize`` call of the process.

- ``mlp``: ``SpikingMLP([784, 256, 256, 10])``, 64 images (issue 29: at most 0.5 s);
- ``sew``: SpikingJelly's ``sew_resnet18``, T = 4, batch 8, 64 x 64 images (issue 29: at most
  2 x the forward pass + 1 s);
- ``rleaky``: a Linear feeding snnTorch ``RLeaky(beta=0.9, linear_features=256)``, T = 784, one
  input per step, batch 64 (sequential MNIST's length; issue 31: seconds, not minutes: at most
  12 forward passes, which bounds the runs of the model, + 10 s for the recurrent theory).

``--busy`` runs a process that spins one core meanwhile (a busy machine). The CPU is named.

    python benchmarks/initialize_speed.py [--threads default 1] [--busy] [--cases mlp sew rleaky]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

from spikeinit.machine import describe, describe_line

CHILD = textwrap.dedent("""
    import json, sys, time, warnings
    import torch
    threads = sys.argv[2]
    if threads != "default":
        torch.set_num_threads(int(threads))
    import spikeinit
    torch.manual_seed(0)
    forward = run = None
    if sys.argv[1] == "mlp":
        from spikeinit.models import SpikingMLP
        model, sample = SpikingMLP([784, 256, 256, 10]), torch.rand(64, 784)
        reset = lambda: None
    elif sys.argv[1] == "rleaky":
        import snntorch as snn
        from snntorch import utils
        model = torch.nn.Sequential(torch.nn.Linear(1, 256), snn.RLeaky(
            beta=0.9, linear_features=256, init_hidden=True))
        sample = torch.rand(784, 64, 1)
        forward = lambda net, x: torch.stack([net(step) for step in x])
        reset = lambda: utils.reset(model)
        run = lambda: forward(model, sample)
    else:
        from spikeinit.experiments.zoo import zoo_resnet
        from spikingjelly.activation_based import functional
        model = zoo_resnet("sew_resnet18")
        sample = torch.rand(8, 3, 64, 64).unsqueeze(0).repeat(4, 1, 1, 1, 1)
        reset = lambda: functional.reset_net(model)
    run = run or (lambda: model(sample))
    times = []
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
            reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        spikeinit.initialize(model, sample=sample, forward=forward)
        took = time.perf_counter() - start
    print(json.dumps({"forward_s": min(times[1:]), "initialize_s": took,
                      "threads": torch.get_num_threads()}))
""")

LIMITS = {"mlp": lambda forward: 0.5, "sew": lambda forward: 2 * forward + 1.0,
          "rleaky": lambda forward: 12 * forward + 10.0}


def run_case(case: str, threads: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, case, threads], capture_output=True,
                          text=True, check=True, env=os.environ.copy())
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["mlp", "sew", "rleaky"],
                        choices=sorted(LIMITS))
    parser.add_argument("--threads", nargs="+", default=["default", "1"])
    parser.add_argument("--busy", action="store_true", help="spin one core meanwhile")
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per case")
    args = parser.parse_args()
    print(describe_line(describe()))
    spinner = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy
               else None)
    try:
        print(f"{'case':<6}{'threads':>8}{'forward s':>11}{'initialize s':>14}"
              f"{'limit s':>9}{'x forward':>11}  {'busy' if args.busy else 'quiet'}")
        for case in args.cases:
            for threads in args.threads:
                for _ in range(args.repeats):
                    row = run_case(case, threads)
                    limit = LIMITS[case](row["forward_s"])
                    print(f"{case:<6}{row['threads']:>8}{row['forward_s']:>11.3f}"
                          f"{row['initialize_s']:>14.3f}{limit:>9.2f}"
                          f"{row['initialize_s'] / row['forward_s']:>11.1f}"
                          f"  {'ok' if row['initialize_s'] <= limit else 'OVER'}", flush=True)
    finally:
        if spinner is not None:
            spinner.kill()


if __name__ == "__main__":
    main()
