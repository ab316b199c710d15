"""How long the command line takes to answer before any run starts: `--help`, `--cfg job`, tab completion.

    python bench/cli_startup.py [--repeats 5] [--out DIR]

Each command is started as a fresh process `--repeats` times (after one untimed warm-up that fills the OS file
cache); the table gives the median wall time, and the time to import each entry module with `python -X importtime`
(what a command pays before Hydra starts). The entry points import only Hydra and the config helpers; torch,
Lightning and transformers are imported when a job starts (`training.py`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "nlp-train --help": ["-m", "nlp_template.train", "--help"],
    "nlp-train --cfg job": ["-m", "nlp_template.train", "--cfg", "job"],
    "nlp-train tab completion (trainer=)": ["-m", "nlp_template.train", "-sc", "query=bash"],
    "nlp-eval --help": ["-m", "nlp_template.eval", "--help"],
    "nlp-predict --help": ["-m", "nlp_template.predict", "--help"],
    "nlp-export --help": ["-m", "nlp_template.export", "--help"],
}
COMPLETION = {"COMP_LINE": "nlp-train trainer=", "COMP_POINT": str(len("nlp-train trainer="))}


def seconds(arguments: list[str]) -> float:
    """Wall time of one `python <arguments>` process (it must succeed)."""
    env = {**os.environ, **COMPLETION} if "-sc" in arguments else None
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"python {' '.join(arguments)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def import_seconds(module: str) -> float:
    """Cumulative import time of `module` as `python -X importtime` reports it."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    line = next(line for line in reversed(done.stderr.splitlines()) if re.search(rf"\| {re.escape(module)}$", line))
    return int(line.split("|")[1]) / 1e6


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure every command; print and save the markdown table; return its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="logs/bench/cli_startup")
    args = parser.parse_args(argv)
    rows = []
    for name, arguments in COMMANDS.items():
        seconds(arguments)  # warm-up: the file cache, .pyc files
        times = [seconds(arguments) for _ in range(args.repeats)]
        rows.append({"command": name, "median_s": statistics.median(times), "max_s": max(times)})
    for module in ("nlp_template.train", "nlp_template.eval", "nlp_template.predict", "nlp_template.export"):
        rows.append({"command": f"import {module}", "median_s": import_seconds(module), "max_s": None})
    lines = [f"| command | median s ({args.repeats} runs) | max s |", "|---|---|---|"]
    for row in rows:
        worst = "" if row["max_s"] is None else f"{row['max_s']:.2f}"
        lines.append(f"| `{row['command']}` | {row['median_s']:.2f} | {worst} |")
    table = "\n".join(lines)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cli_startup.md").write_text(table + "\n")
    print(table)
    return rows


if __name__ == "__main__":
    main()
