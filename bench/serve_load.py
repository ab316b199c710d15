"""Benchmark: `nlp-serve` under a concurrent load, per batch setting and backend (PyTorch checkpoint vs ONNX export).

    python bench/serve_load.py [--ckpt PATH | --train OVERRIDE ...] [--settings 1:0 8:0.005 32:0.01]
                               [--requests 1000] [--clients 32] [--repeats 3] [--threads 2] [--out DIR]

Every step is what a user runs: `nlp-train` (the default run, with `--train` overrides; `--ckpt` reuses a checkpoint),
`nlp-export format=onnx`, then one `nlp-serve` process per backend and batch setting (`MAX_BATCH_SIZE:BATCH_TIMEOUT`)
on a free 127.0.0.1 port. Against each server, after 64 warm-up requests, `--clients` threads send `--requests`
single-record requests (the texts of the embedded sentiment data's test split, cycled) as fast as the answers come;
each round is bounded in count and time. Reported per cell, as medians over `--repeats` rounds: requests per second,
client-side latency p50/p95/p99 (ms), and the server's mean model batch (`/metrics`). Clients and server share this
machine's cores, as a sidecar load generator would; `--threads` are the server's torch/onnxruntime threads.
Writes results.json and table.md to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from export_latency import cli, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUND_DEADLINE = 300  # seconds: a round stops by itself even if the server stalls


def texts(count: int = 1000) -> list[str]:
    """Request texts: the embedded sentiment data's test split."""
    from nlp_template.data.samples.sentiment import SentimentSamples

    return list(SentimentSamples(num_train=1, num_validation=1, num_test=count).load()["test"]["text"])


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """An `nlp-serve` subprocess on a free local port, started and stopped (SIGTERM) as a context manager."""

    def __init__(self, model: list[str], max_batch_size: int, batch_timeout: float, threads: int, logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "nlp_template.serve", *model, f"port={self.port}", f"threads={threads}",
                        f"max_batch_size={max_batch_size}", f"batch_timeout={batch_timeout}",
                        f"paths.log_dir={logs}", "extras.print_config=false"]  # fmt: skip
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                sys.exit(f"{' '.join(self.command)} exited:\n{self.process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                self.process.kill()
                sys.exit("the server did not start within 120 s")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def load_round(url: str, bodies: list[str], requests: int, clients: int) -> dict:
    """`requests` requests from `clients` threads; throughput, latency percentiles and how many failed."""

    def client(number: int) -> list[tuple[float, bool]]:
        timings, stop = [], time.monotonic() + ROUND_DEADLINE
        with httpx.Client(base_url=url, timeout=60) as session:
            for i in range(number * requests // clients, (number + 1) * requests // clients):
                if time.monotonic() > stop:
                    break
                start = time.perf_counter()
                response = session.post("/predict", content=bodies[i % len(bodies)],
                                        headers={"content-type": "application/json"})  # fmt: skip
                timings.append((time.perf_counter() - start, response.status_code == 200))
        return timings

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        timings = [timing for chunk in pool.map(client, range(clients)) for timing in chunk]
    wall = time.perf_counter() - start
    latencies = sorted(seconds for seconds, _ in timings)

    def percentile(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {"answered": len(timings), "failed": sum(not ok for _, ok in timings),
            "requests_per_sec": len(timings) / wall, "p50_ms": percentile(0.5), "p95_ms": percentile(0.95),
            "p99_ms": percentile(0.99)}  # fmt: skip


def measure(model: list[str], backend: str, setting: str, args: argparse.Namespace, bodies: list[str]) -> dict:
    """One server: warm-up, then `--repeats` rounds; the medians and the server's mean batch size."""
    max_batch_size, batch_timeout = setting.split(":")
    with Server(model, int(max_batch_size), float(batch_timeout), args.threads, args.out / "logs") as server:
        load_round(server.url, bodies, 64, min(args.clients, 64))  # warm-up: first calls, thread pools, caches
        rounds = [load_round(server.url, bodies, args.requests, args.clients) for _ in range(args.repeats)]
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).json()
    row = {"backend": backend, "max_batch_size": int(max_batch_size), "batch_timeout": float(batch_timeout),
           "rounds": rounds, "mean_batch_size": metrics["mean_batch_size"],
           "failed": sum(r["failed"] for r in rounds) + sum(args.requests - r["answered"] for r in rounds)}  # fmt: skip
    for key in ("requests_per_sec", "p50_ms", "p95_ms", "p99_ms"):
        row[key] = statistics.median(r[key] for r in rounds)
    print(
        f"{backend:>8} {setting:>9}: {row['requests_per_sec']:7.1f} req/s, p50 {row['p50_ms']:6.1f} ms, p95"
        f" {row['p95_ms']:6.1f} ms, p99 {row['p99_ms']:6.1f} ms, mean batch {row['mean_batch_size']}",
        flush=True,
    )
    return row


def table(rows: list[dict], args: argparse.Namespace) -> str:
    """The results as a Markdown table."""
    lines = [f"{args.requests} single-record requests from {args.clients} clients, medians of {args.repeats} rounds;"
             f" server threads {args.threads}, {os.cpu_count()} CPU cores shared with the clients.", "",
             "| backend | max_batch_size | batch_timeout (s) | requests/s | p50 ms | p95 ms | p99 ms | mean batch |"
             " failed |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        lines.append(f"| {row['backend']} | {row['max_batch_size']} | {row['batch_timeout']:g} |"
                     f" {row['requests_per_sec']:.0f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} |"
                     f" {row['p99_ms']:.1f} | {row['mean_batch_size']} | {row['failed']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; the rows (also written to --out)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", help="a trained checkpoint (default: train the default run)")
    parser.add_argument("--train", nargs="*", default=[], help="nlp-train overrides (e.g. model=...)")
    parser.add_argument("--settings", nargs="+", default=["1:0", "8:0.005", "32:0.01"],
                        help="MAX_BATCH_SIZE:BATCH_TIMEOUT per server")  # fmt: skip
    parser.add_argument("--backends", nargs="+", default=["pytorch", "onnx"], choices=["pytorch", "onnx"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_load")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.ckpt or train(args.train, args.out / "train")
    export_dir = args.out / "onnx"
    if "onnx" in args.backends:
        cli("export", f"ckpt_path={ckpt}", "format=onnx", f"output={export_dir}", "overwrite=true",
            "latency.repeats=0")  # fmt: skip
    models = {"pytorch": [f"ckpt_path={ckpt}"], "onnx": [f"export_dir={export_dir}"]}
    bodies = [json.dumps({"text": text}) for text in texts()]
    rows = []
    for setting in args.settings:
        for backend in args.backends:
            rows.append(measure(models[backend], backend, setting, args, bodies))
            (args.out / "results.json").write_text(json.dumps({"ckpt": ckpt, "rows": rows}, indent=2) + "\n")
    (args.out / "table.md").write_text(table(rows, args))
    print(table(rows, args))
    return rows


if __name__ == "__main__":
    main()
