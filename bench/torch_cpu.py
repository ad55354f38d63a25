"""PyTorch CPU side of `npm run bench:cpu` (the product itself has no Python).

Run by bench/cpu.ts as `/usr/bin/python3 bench/torch_cpu.py <command> ...`; prints one JSON object
on stdout. Commands:
  info                                   torch version and thread count
  matmul --sizes 256,512,1024            best-of-N seconds and GFLOP/s of an n^3 float32 matmul
  mlp --width 512 --batch 2048 --layers 4
                                         best-of-N ms of forward+backward of Linear/ReLU layers
  serve                                  answers one JSON request per stdin line, e.g.
                                         {"command": "matmul", "sizes": [512]}, with one JSON line;
                                         lets the benchmark alternate ours/PyTorch within seconds
"""

import argparse
import json
import sys
import time

import torch


def best_seconds(step, min_repeats: int, budget_seconds: float) -> float:
    """Best of at least `min_repeats` timed runs, continuing while under the time budget."""
    step()  # warm-up: first call pays for allocation and kernel selection
    best = float("inf")
    started = time.perf_counter()
    repeats = 0
    while repeats < min_repeats or time.perf_counter() - started < budget_seconds:
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
        repeats += 1
    return best


def openblas_threads() -> int | None:
    """Threads of the OpenBLAS that torch's matmul runs on (its pool ignores torch's thread setting)."""
    try:
        import ctypes

        return int(ctypes.CDLL("libopenblas.so.0").openblas_get_num_threads())
    except (OSError, AttributeError):
        return None


def info() -> dict:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "openblas_threads": openblas_threads()}


def matmul(sizes: list[int], min_repeats: int, budget_seconds: float) -> dict:
    generator = torch.Generator().manual_seed(0)
    results = []
    for n in sizes:
        a = torch.randn(n, n, generator=generator, dtype=torch.float32)
        b = torch.randn(n, n, generator=generator, dtype=torch.float32)
        c = torch.empty(n, n, dtype=torch.float32)
        seconds = best_seconds(lambda: torch.mm(a, b, out=c), min_repeats, budget_seconds)
        results.append({"size": n, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9})
    return {**info(), "results": results}


def mlp(width: int, batch: int, layers: int, min_repeats: int, budget_seconds: float) -> dict:
    torch.manual_seed(0)
    modules: list[torch.nn.Module] = []
    for index in range(layers):
        modules.append(torch.nn.Linear(width, width))
        if index < layers - 1:
            modules.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*modules)
    inputs = torch.randn(batch, width)
    targets = torch.randn(batch, width)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()

    seconds = best_seconds(step, min_repeats, budget_seconds)
    return {**info(), "width": width, "batch": batch, "layers": layers, "ms": seconds * 1e3}


def serve(min_repeats: int, budget_seconds: float) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        repeats = request.get("min_repeats", min_repeats)
        budget = request.get("budget_seconds", budget_seconds)
        if request["command"] == "info":
            reply = info()
        elif request["command"] == "matmul":
            reply = matmul(request["sizes"], repeats, budget)
        elif request["command"] == "mlp":
            reply = mlp(request["width"], request["batch"], request["layers"], repeats, budget)
        else:
            reply = {"error": f"unknown command {request['command']!r}"}
        print(json.dumps(reply), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["info", "matmul", "mlp", "serve"])
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--min-repeats", type=int, default=5)
    parser.add_argument("--budget-seconds", type=float, default=0.5)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.min_repeats, args.budget_seconds)
        return
    if args.command == "info":
        result = info()
    elif args.command == "matmul":
        sizes = [int(size) for size in args.sizes.split(",")]
        result = matmul(sizes, args.min_repeats, args.budget_seconds)
    else:
        result = mlp(args.width, args.batch, args.layers, args.min_repeats, args.budget_seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
