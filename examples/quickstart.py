"""Quick start: train one small network with several optimizers and compare them.

Run with ``python examples/quickstart.py`` inside ``.venv`` (after ``make setup``). It fits a
two-layer network to a noisy 1-D function with each optimizer at its usual learning rate,
three seeds each, and prints the final training loss, so you can see the registry, the
drop-in classes and the differences between them in a few seconds on a CPU.
"""

import math
import time

import torch

import optimlab

SETTINGS = {  # registry name -> hyperparameters
    "gd": {"lr": 0.05},  # 0.1 diverges on this problem
    "momentum": {"lr": 0.02},
    "nag": {"lr": 0.02},
    "adagrad": {"lr": 0.05},
    "rmsprop": {"lr": 3e-3},
    "adam": {"lr": 1e-2},
    "adamw": {"lr": 1e-2},
    "lamb": {"lr": 1e-2},
    "lion": {"lr": 1e-3},
    "adabelief": {"lr": 1e-2},
    "schedulefreeadamw": {"lr": 1e-2},
}


def train(name: str, hparams: dict, seed: int, steps: int = 500) -> float:
    torch.manual_seed(seed)
    x = torch.linspace(-3, 3, 256).unsqueeze(1)
    y = torch.sin(2 * x) + 0.1 * torch.randn_like(x)
    model = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    opt = optimlab.create(name, model.parameters(), **hparams)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    if hasattr(opt, "eval"):  # schedule-free evaluates at its averaged point
        opt.eval()
    with torch.no_grad():
        return torch.nn.functional.mse_loss(model(x), y).item()


def main() -> None:
    # One thread: a 64-unit network's operations are too small to share between cores, and
    # where another program keeps a core busy, torch's threads wait on each other at every
    # operation (on a 2-core machine running a test suite beside it: 66 s with two threads,
    # 8.5 s with one)
    torch.set_num_threads(1)
    print(f"optimlab {optimlab.__version__}: {len(optimlab.available())} registry names\n")
    print(f"{'optimizer':<20}{'hyperparameters':<18}{'final loss, 3 seeds':<22}time")
    for name, hparams in SETTINGS.items():
        start = time.perf_counter()
        losses = [train(name, hparams, seed) for seed in range(3)]
        mean = sum(losses) / len(losses)
        sd = math.sqrt(sum((v - mean) ** 2 for v in losses) / (len(losses) - 1))
        hp = ", ".join(f"{k}={v:g}" for k, v in hparams.items())
        spread = f"{mean:.4f} +- {sd:.4f}"
        print(f"{name:<20}{hp:<18}{spread:<22}{time.perf_counter() - start:.1f}s")
    print("\nNoise floor is about 0.010 (the added noise's variance). "
          "See `optimlab compare gd momentum adam lion` for what sets them apart.")


if __name__ == "__main__":
    main()
