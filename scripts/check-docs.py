"""Run the commands README.md and docs/ show, as written, after `make demo`; say why each other one is not run.

    python scripts/check-docs.py            # a table: file:line, command, outcome; exit 1 if a command run fails
    python scripts/check-docs.py --list     # only the commands and the plan for each

A command runs when everything it needs is in a clone after `make demo` (the demo bundle, the configs). It is
not run, with the reason printed, when it needs what a clone cannot have (the public data sets under data/, a
GPU, Docker, Kubernetes, Envoy, the network, a token) or is a setup step (`make`, `pip install`). Servers
(`serve`, `extproc`) are started, must come up, and are stopped. Placeholders are filled in: CONFIG ->
configs/quickstart.yaml, BUNDLE -> runs/quickstart/bundle. tests/test_docs_commands.py checks, without running
anything, that every routerforge command shown uses real subcommands and options.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_FENCES = ("bash", "sh", "shell", "console")
PLACEHOLDERS = {"CONFIG": "configs/quickstart.yaml", "BUNDLE": "runs/quickstart/bundle"}
NEEDS = [  # (pattern in the command, why it is not run here)
    (r"^(make|pip) ", "setup step (the check runs after it)"),
    (r"^\. ", "setup step (the check runs after it)"),
    (r"^(docker|kubectl|envoy)\b", "needs {0}"),
    (r"\b(torchrun|accelerate launch)\b", "needs several processes/GPUs ({0})"),
    (r"^curl\b.*/chat/completions", "needs the router's backends (an LLM server)"),
    (r"score-endpoint\.py", "needs an OpenAI-compatible LLM endpoint"),
    (r"HF_TOKEN|\bpush\b|\bhf:", "needs the Hugging Face Hub (network, token)"),
    (r"OTEL_EXPORTER", "needs an OpenTelemetry collector"),
    (r"semantic-router\.yaml", "needs a GPU and the network (hub data, ModernBERT)"),
    (r"(^|[\s=])(data/|DIR\b)|--data-dir|local-data\.yaml", "needs the public data sets (data/)"),
    (r"\b(models/|runs/local-data|runs/routing)", "needs a model trained from the public data ({0})"),
    (r"--data \S+\.jsonl|/shared/", "needs the user's own data file"),
    (r"\.\.\.", "an elided example (...)"),
    (r"my-router\.yaml|\brouter\.yaml\b", "needs the user's own router.yaml"),
]
TIMEOUT_S = 600
# the docs assume the activated virtual environment (README: `. .venv/bin/activate`): its bin/ comes first
ENV = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def commands(paths: list[Path]) -> list[tuple[str, int, str, int]]:
    """``(file, line, command, block)`` for every command line in a shell code block (continuations joined);
    ``block`` numbers the code blocks (a server started in one serves the curl commands after it there)."""
    found, block = [], 0
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        fence, pending, start = None, "", 0
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                fence = None if fence is not None else stripped[3:].strip() or "text"
                block += 1
                continue
            if fence not in SHELL_FENCES or not stripped or (stripped.startswith("#") and not pending):
                continue
            if not pending:
                start = number
            pending += (" " if pending else "") + stripped.rstrip("\\").strip()
            if not stripped.endswith("\\"):
                found.append((str(path.relative_to(ROOT)), start, strip_comment(pending), block))
                pending = ""
    return found


def strip_comment(command: str) -> str:
    """The command without its trailing `# ...` comment (a # inside quotes stays)."""
    quote, out = None, []
    for i, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            break
        out.append(char)
    return "".join(out).strip()


def plan(command: str) -> tuple[str, str]:
    """``("run" | "serve" | "skip", reason or the command to run)``."""
    for pattern, why in NEEDS:
        match = re.search(pattern, command)
        if match:
            return "skip", why.format(match.group(0).strip())
    filled = command
    for name, value in PLACEHOLDERS.items():
        filled = re.sub(rf"\b{name}\b", value, filled)
    if re.match(r"routerforge (serve|extproc)\b", filled):
        return "serve", filled
    if filled.startswith("curl"):
        return "curl", filled
    return "run", filled


def _port_of(command: str, default: int) -> int:
    match = re.search(r"--port[ =](\d+)", command)
    return int(match.group(1)) if match else default


def serve(command: str) -> tuple[subprocess.Popen | None, str]:
    """Start a server command and wait until its port accepts connections: the running process, or None."""
    port = _port_of(command, 50051 if "extproc" in command else 8080)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, shell=True, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    while time.perf_counter() - started < 120:
        if process.poll() is not None:
            return None, f"exited {process.returncode}: {' '.join(process.stdout.read().decode().split())[-300:]}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"listening on port {port} after {time.perf_counter() - started:.1f} s"
        except OSError:
            time.sleep(0.5)
    stop(process)
    return None, "did not listen within 120 s"


def stop(process: subprocess.Popen) -> None:
    """Stop a server started by :func:`serve` (its whole process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def run(command: str) -> tuple[bool, str]:
    """Run one command from the repository root; files it creates at the top level are removed after."""
    before = set(os.listdir(ROOT))
    started = time.perf_counter()
    try:
        done = subprocess.run(command, shell=True, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {TIMEOUT_S} s"
    finally:
        for name in set(os.listdir(ROOT)) - before:
            target = ROOT / name
            if target.is_file():
                target.unlink()
    seconds = time.perf_counter() - started
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    refused = command.startswith("curl") and done.stdout.lstrip().startswith('{"error"')  # curl -s exits 0 on a 4xx
    return done.returncode == 0 and not refused, f"exit {done.returncode} in {seconds:.1f} s: {tail[0][:160]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args()
    if not args.list and not (ROOT / "runs/quickstart/bundle/routerforge.json").is_file():
        print("run `make demo` first: the commands are checked against its demo bundle", file=sys.stderr)
        return 2
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    counts = {"ran": 0, "failed": 0, "not run": 0}
    print("| where | command | outcome |\n|---|---|---|")
    servers: list[subprocess.Popen] = []
    current = None
    for where, line, command, block in commands(paths):
        if block != current:  # servers live until the end of their code block
            for process in servers:
                stop(process)
            servers, current = [], block
        kind, detail = plan(command)
        if kind == "curl" and not servers:
            kind, detail = "skip", "needs a running router (no command before it in its block starts one)"
        if kind == "skip":
            outcome, key = f"not run: {detail}", "not run"
        elif args.list:
            outcome, key = f"would {kind}: `{detail}`", "ran"
        else:
            if kind == "serve":
                process, note = serve(detail)
                ok = process is not None
                servers += [process] if process is not None else []
            else:
                ok, note = run(detail)
            outcome, key = ("ok, " if ok else "FAILED, ") + note, "ran" if ok else "failed"
        counts[key] += 1
        shown = command if len(command) <= 110 else command[:107] + "..."
        print(f"| {where}:{line} | `{shown}` | {outcome.replace('|', '/')} |", flush=True)
    for process in servers:
        stop(process)
    print(f"\n{counts['ran']} ran, {counts['failed']} failed, {counts['not run']} not run (reason given)")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
