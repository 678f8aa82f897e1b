#!/usr/bin/env python3
"""Start-up and footprint of one shim binary, for bench/startup.sh (issue 6, item 6).

    startup.py --shim NAME --bin PATH --store DIR --work DIR [--starts N] [--requests N]
               [--runtime-api PATH]

Prints one JSON object: start-to-first-200 times (ms) of N fresh starts, idle RSS, RSS and peak RSS
after REQUESTS requests, or `error`. Each shim is fed as its platform feeds it:

- `disttags`: `disttags serve --listen 127.0.0.1:P --store file://DIR --upstream off`;
- `disttags-cloudrun`: `PORT=P` (it binds 0.0.0.0:P, as on Cloud Run);
- `disttags-azure`: `FUNCTIONS_CUSTOMHANDLER_PORT=P`, `AzureWebJobsScriptRoot` holding a host.json
  with the default route prefix, requests under `/api` as the Functions host forwards them;
- `disttags-lambda`: `AWS_LAMBDA_RUNTIME_API` pointing at the test suite's Runtime API emulator
  (tests/src/lambda.rs), run for each start as the `runtime_api` program (tests/src/bin/runtime_api.rs,
  `--runtime-api PATH`): it hands out API Gateway HTTP API (payload 2.0) events built as the tests
  build them and takes the function's responses.

"First successful response" is the first `200` for `GET /-/package/left-pad/dist-tags` (Lambda: the
first invocation response whose `statusCode` is 200), timed from just before the process is spawned.
The load after it cycles through is-odd, left-pad, react and typescript: wrk (one thread, 10
connections, stopped by a Lua script after REQUESTS responses) for the HTTP shims, and REQUESTS
invocations one after another (as one Lambda instance receives them) for Lambda.
"""

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

# The one free-port helper of the Python tools.
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "emulators"))
from ports import free_port  # noqa: E402

PACKAGES = ["is-odd", "left-pad", "react", "typescript"]
FIRST = "/-/package/left-pad/dist-tags"
START_TIMEOUT = 10.0


# Settings passed on to every shim when set (the environment is otherwise the platform's):
# DISTTAGS_METRICS=off measures start-up without the metrics recorder.
PASSED = {key: os.environ[key] for key in ("DISTTAGS_METRICS",) if key in os.environ}


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=12)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


# --- the HTTP shims ------------------------------------------------------------------------------


def get_status(port, path):
    """Status of one GET on a fresh connection, or None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            parts = data.split(b" ", 2)
            return int(parts[1]) if len(parts) > 1 else None
    except (OSError, ValueError):
        return None


class HttpShim:
    def __init__(self, args):
        self.args = args
        self.prefix = "/api" if args.shim == "disttags-azure" else ""
        if args.shim == "disttags-azure":
            self.root = os.path.join(args.work, "azure-root")
            os.makedirs(self.root, exist_ok=True)
            with open(os.path.join(self.root, "host.json"), "w") as f:
                json.dump({
                    "version": "2.0",
                    "extensions": {"http": {"routePrefix": "api"}},
                    "customHandler": {
                        "description": {"defaultExecutablePath": "disttags-azure"},
                        "enableForwardingHttpRequest": True,
                    },
                }, f)

    def spawn(self, log):
        port = free_port()
        a = self.args
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DISTTAGS_UPSTREAM": "off", **PASSED}
        store = f"file://{a.store}"
        if a.shim == "disttags":
            argv = [a.bin, "serve", "--listen", f"127.0.0.1:{port}", "--store", store, "--upstream", "off"]
        elif a.shim == "disttags-cloudrun":
            argv, env["PORT"], env["DISTTAGS_STORE"] = [a.bin], str(port), store
        elif a.shim == "disttags-azure":
            argv = [a.bin]
            env.update(FUNCTIONS_CUSTOMHANDLER_PORT=str(port), AzureWebJobsScriptRoot=self.root,
                       DISTTAGS_STORE=store, FUNCTIONS_WORKER_RUNTIME="custom")
        else:
            raise SystemExit(f"unknown HTTP shim {a.shim}")
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=a.work)
        return process, port, start

    def start_once(self, log_path):
        """Spawns the shim and waits for its first 200; returns (process, port, ms)."""
        with open(log_path, "ab") as log:
            process, port, start = self.spawn(log)
        path = self.prefix + FIRST
        while True:
            if get_status(port, path) == 200:
                return process, port, (time.perf_counter() - start) * 1000
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode} before answering: {tail(log_path)}")
            if time.perf_counter() - start > START_TIMEOUT:
                stop(process)
                raise RuntimeError(f"no 200 within {START_TIMEOUT:.0f} s: {tail(log_path)}")
            time.sleep(0.0005)

    def load(self, process, port, requests):
        script = os.path.join(self.args.work, "stop-after.lua")
        with open(script, "w") as f:
            f.write(
                "local paths, i, n, limit = {}, 0, 0, 0\n"
                "function init(args)\n"
                "  limit = tonumber(args[1])\n"
                "  for k = 2, #args do paths[#paths + 1] = args[k] end\n"
                "end\n"
                "function request()\n"
                "  i = i % #paths + 1\n"
                "  return wrk.format('GET', paths[i])\n"
                "end\n"
                "function response(status, headers, body)\n"
                "  n = n + 1\n"
                "  if n == limit then io.write('bench: limit reached\\n'); io.flush(); wrk.thread:stop() end\n"
                "end\n"
            )
        paths = [f"{self.prefix}/-/package/{p}/dist-tags" for p in PACKAGES]
        # wrk's main thread sleeps for the whole duration whatever the threads do; once the script
        # says the count is reached, SIGINT makes it print its summary and exit.
        wrk = subprocess.Popen(
            ["wrk", "-t1", "-c10", "-d600s", "-s", script, f"http://127.0.0.1:{port}/", "--", str(requests), *paths],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines = []
        for line in wrk.stdout:
            lines.append(line)
            if line.startswith("bench: limit reached"):
                wrk.send_signal(signal.SIGINT)
        wrk.wait()
        if wrk.returncode != 0 or not any("requests in" in line for line in lines):
            raise RuntimeError(f"wrk failed: {''.join(lines).strip()}")
        done, errors = 0, 0
        for line in lines:
            words = line.split()
            if "requests in" in line:
                done = int(words[0])
            elif line.strip().startswith("Non-2xx"):
                errors += int(words[-1])
            elif line.strip().startswith("Socket errors"):
                errors += sum(int(w.strip(",")) for w in words[3::2])
        return done, errors


# --- the Lambda shim, through the test suite's Runtime API emulator ---------------------------------


class RuntimeApi:
    """One `runtime_api` process (tests/src/bin/runtime_api.rs): the suite's Runtime API emulator.
    It prints `READY {env}` (AWS_LAMBDA_RUNTIME_API and the rest of the environment Lambda gives a
    function), then answers each request path written to it, one per line, with one JSON line,
    `{"status": 200}` or `{"status": N, "error": "..."}`, once the function has answered the
    invocation it made of it. Closing its standard input stops it."""

    def __init__(self, program, log):
        self.process = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=log, text=True, bufsize=1)
        line = self.read(START_TIMEOUT)
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"runtime_api printed {line.strip()!r} instead of READY")
        self.env = json.loads(line[len("READY "):])

    def read(self, timeout, function=None):
        """The next line it prints; fails after `timeout` s, or once `function` has exited."""
        deadline = time.perf_counter() + timeout
        while True:
            # One line is printed per line written, so nothing is ever left in the read buffer.
            if select.select([self.process.stdout], [], [], 0.05)[0]:
                line = self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"runtime_api exited with {self.process.wait()}")
                return line
            if function is not None and function.poll() is not None:
                raise RuntimeError(f"exited with {function.returncode} before answering")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no response within {timeout:.0f} s")

    def invoke(self, path, timeout, function=None):
        self.process.stdin.write(path + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.read(timeout, function))
        if answer.get("status") != 200:
            raise RuntimeError(f"GET {path}: status {answer.get('status')}: {str(answer.get('error'))[:200]}")

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class LambdaShim:
    def __init__(self, args):
        if not args.runtime_api:
            raise SystemExit("startup.py: disttags-lambda needs --runtime-api PATH (the runtime_api binary)")
        self.args = args
        self.paths = [f"/-/package/{p}/dist-tags" for p in PACKAGES]
        self.api = None

    def start_once(self, log_path):
        # A fresh emulator for each start, as a new Lambda environment gets.
        with open(log_path, "ab") as log:
            self.api = RuntimeApi(self.args.runtime_api, log)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DISTTAGS_UPSTREAM": "off",
                   "DISTTAGS_STORE": f"file://{self.args.store}", **PASSED, **self.api.env}
            start = time.perf_counter()
            process = subprocess.Popen([self.args.bin], env=env, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=self.args.work)
        try:
            self.api.invoke(FIRST, START_TIMEOUT, process)
        except RuntimeError as e:
            stop(process)
            self.stopped()
            raise RuntimeError(f"{e}: {tail(log_path)}") from None
        return process, None, (time.perf_counter() - start) * 1000

    def load(self, process, port, requests):
        for k in range(requests):
            self.api.invoke(self.paths[k % len(self.paths)], 15, process)
        return requests, 0

    def stopped(self):
        if self.api:
            self.api.close()
            self.api = None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shim", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--runtime-api", help="the runtime_api binary (tests/src/bin/runtime_api.rs), for disttags-lambda")
    args = p.parse_args()
    shim = LambdaShim(args) if args.shim == "disttags-lambda" else HttpShim(args)
    log_path = os.path.join(args.work, f"{args.shim}.log")
    result = {"shim": args.shim, "size": os.path.getsize(args.bin)}
    try:
        times = []
        for _ in range(args.starts):
            process, _, ms = shim.start_once(log_path)
            times.append(ms)
            stop(process)
            getattr(shim, "stopped", lambda: None)()
            time.sleep(0.05)
        result["start_ms"] = times
        # One more start, kept: footprint when idle, then after the load.
        process, port, _ = shim.start_once(log_path)
        try:
            time.sleep(1.0)
            result["idle_kib"], _ = rss_kib(process.pid)
            t0 = time.perf_counter()
            result["requests"], result["errors"] = shim.load(process, port, args.requests)
            result["load_s"] = time.perf_counter() - t0
            result["after_kib"], result["peak_kib"] = rss_kib(process.pid)
        finally:
            stop(process)
            getattr(shim, "stopped", lambda: None)()
    except (RuntimeError, OSError) as e:
        result["error"] = str(e)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
