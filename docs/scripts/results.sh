#!/usr/bin/env bash
# The training runs behind docs/results.md, in the order they were run (one CPU thread each;
# the CIFAR-10 run went alongside on the other core). Every run resumes (--resume), so the
# script can be stopped and restarted. Usage: bash docs/scripts/results.sh [DATA_DIR]
set -euo pipefail
D=${1:-../shared/data}
R=runs/results
export OMP_NUM_THREADS=1
INITS="paper kaiming xavier pytorch"
common=(--data-dir "$D" --device cpu --no-progress --resume --seeds 0 1 2)

# Direct encoding, every option at its default (10 epochs, membrane readout, AdamW 3e-3).
spikeinit compare --dataset fashion-mnist --init $INITS "${common[@]}" --out $R/fmnist-mlp
spikeinit compare --dataset mnist --init $INITS "${common[@]}" --out $R/mnist-mlp
# The readout: spike counts instead of the membrane, same seeds.
spikeinit compare --dataset mnist --init paper --loss counts "${common[@]}" \
    --out $R/mnist-mlp-counts
# The authors' protocol: input LIF layer, spike-count loss, Adam 1e-3, atan slope 2.
spikeinit compare --preset paper-protocol --dataset mnist --init $INITS "${common[@]}" \
    --out $R/mnist-mlp-protocol
spikeinit compare --preset paper-protocol --dataset fashion-mnist --init $INITS "${common[@]}" \
    --out $R/fmnist-mlp-protocol
# N-MNIST: the stored subset (1000 train / 100 test recordings), frames, our 2-block CNN.
spikeinit compare --dataset nmnist --model cnn --init $INITS "${common[@]}" \
    --out $R/nmnist-cnn
