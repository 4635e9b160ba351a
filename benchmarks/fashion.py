"""Seconds per training epoch: our in-memory pipeline vs the book's DataLoader data path.

Run from the project root after `dvc repro fetch-fashion`:

    python benchmarks/fashion.py [--models mlp softmax] [--fraction 0.25] [--threads 0]
        [--markdown docs/results/fashion-speed.md]

Both sides train the same model with the same optimizer step and batch size (256), in this
process. The reference is the book's data path:
a `torch.utils.data.DataLoader` (shuffle, batch 256, num_workers=4) over a per-sample
Dataset that turns each uint8 image into a float tensor the way torchvision's `ToTensor`
does (divide by 255, add a channel dimension). It times the first `--fraction` of an
epoch and scales up: worker start-up plus first batch counted once, the rest of the epoch
at the measured steady rate. Ours is timed over one full epoch.

The reference runs twice: with torch's default thread count, as the book's code does (its
two threads then compete with the four loader workers for the cores), and with our thread
count, which isolates the cost of the per-sample data path itself.

The "book" figure depends heavily on what else runs: with a core busy elsewhere its two
threads wait on each other at every small matmul. `--busy-cores N` reproduces that
condition deterministically by spinning N processes for the duration of the benchmark;
the 1-minute load average is printed so a reader knows what the machine was doing.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import multiprocessing
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _report import add_markdown_argument, results_page
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import resolve_threads
from pipeline.fashion.arrays import load_arrays, to_tensors
from pipeline.fashion.models import Classifier, build_classifier
from pipeline.fashion.optim import build_optimizer
from pipeline.fashion.params import FASHION_MODELS
from pipeline.fashion.train import TrainSettings, train_classifier

PAGE = "docs/results/fashion-speed.md"
BATCH = 256
BOOK_THREADS = torch.get_num_threads()  # torch's default, before anything changes it
SETTINGS = TrainSettings(epochs=1, batch_size=BATCH, optimizer="adam", lr=0.003, momentum=0.9,
                         weight_decay=0.0, schedule="constant")


class PerSampleFashion(Dataset):
    """The book's data path: one uint8 image at a time, converted on every access."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # What torchvision's ToTensor does for a 28x28 uint8 image: HxW -> 1xHxW float / 255.
        image = torch.from_numpy(np.array(self.images[i], copy=True)).unsqueeze(0)
        return image.float().div(255.0), int(self.labels[i])


def time_ours(clf: Classifier, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
              y_test: torch.Tensor, device: torch.device | None = None) -> float:
    """One full epoch of our training loop (evaluation excluded). On a GPU the second of two
    epochs: the first pays CUDA's one-time start-up (context, kernels, the allocator's pool)."""
    g = torch.Generator().manual_seed(0)
    if device is None or device.type == "cpu":
        return train_classifier(clf, x, y, x_test, y_test, SETTINGS, g, progress=False)[0].seconds
    two = dataclasses.replace(SETTINGS, epochs=2)
    return train_classifier(clf, x, y, x_test, y_test, two, g, progress=False, device=device)[1].seconds


def time_reference(clf: Classifier, dataset: Dataset, fraction: float, threads: int) -> float:
    """Estimated seconds of one full epoch of the DataLoader loop (see module docstring)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _time_loader_epoch(clf, dataset, fraction)
    finally:
        torch.set_num_threads(previous)


def _time_loader_epoch(clf: Classifier, dataset: Dataset, fraction: float) -> float:
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=4)
    total = len(loader)
    measured = max(2, math.ceil(fraction * total))
    optimizer = build_optimizer("adam", clf.model.parameters(), 0.003, 0.9, 0.0, clf.scratch)
    clf.model.train()
    start = time.perf_counter()
    first_done = 0.0
    for i, (xb, yb) in enumerate(loader):
        loss = clf.loss(clf.model(xb.reshape(len(xb), -1)), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i == 0:
            first_done = time.perf_counter()
        if i + 1 == measured:
            break
    end = time.perf_counter()
    if measured >= total:
        return end - start
    per_batch = (end - first_done) / (measured - 1)
    return (first_done - start) + per_batch * (total - 1)


def _spin() -> None:
    while True:
        pass


def start_busy_cores(count: int) -> list[multiprocessing.Process]:
    """`count` processes that each keep one core busy, like a neighbour's job would."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for process in spinners:
        process.start()
    return spinners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(FASHION_MODELS),
                        choices=FASHION_MODELS)
    parser.add_argument("--fraction", type=float, default=0.2,
                        help="share of an epoch the reference is timed over (1 = all of it)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = free cores")
    parser.add_argument("--busy-cores", type=int, default=0,
                        help="spin this many processes meanwhile (the 'core busy elsewhere' case)")
    add_markdown_argument(parser, PAGE)
    args = parser.parse_args()

    paths = ProjectPaths.here()
    if not paths.fashion_arrays.exists():
        sys.exit(f"{paths.fashion_arrays} missing: run `dvc repro fetch-fashion` first")
    spinners = start_busy_cores(args.busy_cores)
    try:
        with results_page(__file__, "Fashion-MNIST: seconds per epoch against the book's DataLoader", __doc__,
                          args.markdown):
            run(args, paths)
    finally:
        for process in spinners:
            process.terminate()


def run(args: argparse.Namespace, paths: ProjectPaths) -> None:
    """Time each model both ways and print one table row per model."""
    if args.busy_cores:
        time.sleep(2.0)  # let the spinners get going before anything is timed
    threads = args.threads if args.threads > 0 else max(1, resolve_threads(0) - args.busy_cores)
    torch.set_num_threads(threads)
    data = load_arrays(paths.fashion_arrays)
    x, y = to_tensors(data.train_images, data.train_labels)
    x_test, y_test = to_tensors(data.test_images, data.test_labels)
    dataset = PerSampleFashion(data.train_images, data.train_labels)

    print(f"torch {torch.__version__}, {threads} thread(s), batch {BATCH}, "
          f"{len(x)} training images per epoch; {args.busy_cores} core(s) kept busy; "
          f"1-min load {os.getloadavg()[0]:.2f}")
    print(f"reference: DataLoader(num_workers=4) over per-sample ToTensor-style conversion, "
          f"timed over the first {args.fraction:.0%} of an epoch and scaled to a full one")
    print(f"ours: one full epoch from in-memory tensors, {threads} thread(s)")
    print(f"book: the reference with torch's default {BOOK_THREADS} thread(s), as in the book")
    print(f"same-threads: the reference with our {threads} thread(s): the data path alone\n")
    gpu = torch.device("cuda") if torch.cuda.is_available() else None
    if gpu is not None:
        print(f"gpu: our loop on {torch.cuda.get_device_name(gpu)}, tensors on the GPU for the whole run "
              "(the second epoch of two; the first pays CUDA's start-up)\n")
    print(f"{'model':<17}{'ours s/epoch':>13}{'book s/epoch':>14}{'ratio':>8}"
          f"{'same-threads s/epoch':>22}{'ratio':>8}" + (f"{'gpu s/epoch':>13}{'vs ours':>9}" if gpu else ""))
    for name in args.models:
        def fresh(name: str = name) -> Classifier:
            return build_classifier(name, (256,), (256, 256), (0.2, 0.5))
        ours = time_ours(fresh(), x, y, x_test, y_test)
        book = time_reference(fresh(), dataset, args.fraction, BOOK_THREADS)
        same = time_reference(fresh(), dataset, args.fraction, threads)
        row = f"{name:<17}{ours:>13.2f}{book:>14.2f}{book / ours:>7.1f}x{same:>22.2f}{same / ours:>7.1f}x"
        if gpu is not None:
            on_gpu = time_ours(fresh(), x, y, x_test, y_test, gpu)
            row += f"{on_gpu:>13.3f}{ours / on_gpu:>8.1f}x"
        print(row, flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    # The book's num_workers=4 exceeds the 2 cores here; that is the point, not news.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    main()
