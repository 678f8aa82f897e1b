#!/usr/bin/env python3
"""Start-up and footprint of one shim binary, for bench/startup.sh (issue 6, item 6).

    startup.py --shim NAME --bin PATH --store DIR --work DIR [--starts N] [--requests N]
               [--lambda-event FILE]

Prints one JSON object: start-to-first-200 times (ms) of N fresh starts, idle RSS, RSS and peak RSS
after REQUESTS requests, or `error`. Each shim is fed as its platform feeds it:

- `disttags`: `disttags serve --listen 127.0.0.1:P --store file://DIR --upstream off`;
- `disttags-cloudrun`: `PORT=P` (it binds 0.0.0.0:P, as on Cloud Run);
- `disttags-azure`: `FUNCTIONS_CUSTOMHANDLER_PORT=P`, `AzureWebJobsScriptRoot` holding a host.json
  with the default route prefix, requests under `/api` as the Functions host forwards them;
- `disttags-lambda`: `AWS_LAMBDA_RUNTIME_API` pointing at the Runtime API emulator below, which hands
  out API Gateway HTTP API (payload 2.0) events and takes the function's responses.

"First successful response" is the first `200` for `GET /-/package/left-pad/dist-tags` (Lambda: the
first invocation response whose `statusCode` is 200), timed from just before the process is spawned.
The load after it cycles through is-odd, left-pad, react and typescript: wrk (one thread, 10
connections, stopped by a Lua script after REQUESTS responses) for the HTTP shims, and REQUESTS
invocations one after another (as one Lambda instance receives them) for Lambda.
"""

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PACKAGES = ["is-odd", "left-pad", "react", "typescript"]
FIRST = "/-/package/left-pad/dist-tags"
START_TIMEOUT = 10.0

# The environment Lambda gives every function, besides AWS_LAMBDA_RUNTIME_API.
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "disttags",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/disttags",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/25/[$LATEST]0123456789abcdef",
    "AWS_REGION": "us-east-1",
    "LAMBDA_TASK_ROOT": "/var/task",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DISTTAGS_UPSTREAM": "off"}
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


# --- the Lambda shim, through a Runtime API emulator ---------------------------------------------


class RuntimeApi:
    """The AWS Lambda Runtime API (2018-06-01) as the function sees it: `GET …/invocation/next` long-polls
    for an event, `POST …/invocation/{id}/response` or `…/{id}/error` answers it, `POST …/init/error`
    reports a failed start. Written from AWS's published interface, like tests/src/lambda.rs."""

    def __init__(self):
        self.events = queue.Queue()
        self.results = queue.Queue()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):
                pass

            def reply(self, status, body, headers=()):
                head = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Not Found'}",
                        "Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
                self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404, b'{"errorMessage":"not found"}')
                item = api.events.get()
                if item is None:
                    self.close_connection = True
                    return self.reply(500, b'{"errorMessage":"emulator stopping"}')
                request_id, event = item
                deadline = int(time.time() * 1000) + 30_000
                self.reply(200, event, [
                    f"Lambda-Runtime-Aws-Request-Id: {request_id}",
                    f"Lambda-Runtime-Deadline-Ms: {deadline}",
                    "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:disttags",
                    "Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                ])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path
                if path == "/2018-06-01/runtime/init/error":
                    api.results.put(("init", "error", body))
                elif path.startswith("/2018-06-01/runtime/invocation/"):
                    request_id, _, outcome = path[len("/2018-06-01/runtime/invocation/"):].partition("/")
                    api.results.put((request_id, outcome, body))
                else:
                    return self.reply(404, b'{"errorMessage":"not found"}')
                self.reply(202, b'{"status":"OK"}')

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A function process stopped between starts drops its long poll: not an error.
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def invoke(self, request_id, event, timeout):
        self.events.put((request_id, event))
        try:
            got_id, outcome, body = self.results.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no response within {timeout:.0f} s") from None
        if got_id == "init":
            raise RuntimeError(f"init error: {body[:200]!r}")
        if got_id != request_id or outcome != "response":
            raise RuntimeError(f"invocation {request_id}: {outcome} {body[:200]!r}")
        status = json.loads(body).get("statusCode")
        if status != 200:
            raise RuntimeError(f"invocation {request_id}: statusCode {status}: {body[:200]!r}")

    def close(self):
        for _ in range(8):
            self.events.put(None)
        self.server.shutdown()
        self.server.server_close()


class LambdaShim:
    def __init__(self, args):
        self.args = args
        with open(args.lambda_event) as f:
            self.template = json.load(f)
        self.events = [self.event(f"/-/package/{p}/dist-tags") for p in PACKAGES]
        self.first = self.event(FIRST)
        self.api = None
        self.count = 0

    def event(self, path):
        # An API Gateway HTTP API (payload 2.0) event, as tests/src/lambda.rs builds it.
        event = json.loads(json.dumps(self.template))
        event["rawPath"] = path
        event["rawQueryString"] = ""
        event["requestContext"]["http"]["method"] = "GET"
        event["requestContext"]["http"]["path"] = path
        event.pop("queryStringParameters", None)
        event.pop("body", None)
        return json.dumps(event).encode()

    def next_id(self):
        self.count += 1
        return f"8476a536-e9f4-11e8-9739-{self.count:012x}"

    def start_once(self, log_path):
        self.api = RuntimeApi()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DISTTAGS_UPSTREAM": "off",
               "DISTTAGS_STORE": f"file://{self.args.store}", "AWS_LAMBDA_RUNTIME_API": self.api.addr,
               **LAMBDA_ENV}
        with open(log_path, "ab") as log:
            start = time.perf_counter()
            process = subprocess.Popen([self.args.bin], env=env, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=self.args.work)
        try:
            self.api.invoke(self.next_id(), self.first, START_TIMEOUT)
        except RuntimeError as e:
            stop(process)
            self.api.close()
            raise RuntimeError(f"{e}: {tail(log_path)}") from None
        return process, None, (time.perf_counter() - start) * 1000

    def load(self, process, port, requests):
        for k in range(requests):
            self.api.invoke(self.next_id(), self.events[k % len(self.events)], 15)
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
    p.add_argument("--lambda-event")
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
