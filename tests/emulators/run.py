#!/usr/bin/env python3
"""Run one storage emulator for the disttags test suite (stdlib only).

    run.py KIND --port P --data DIR --bucket NAME [--tools DIR] [--timeout S]

KIND is one of moto, seaweedfs, azurite, gcs. The server is started as a child
in its own process group, bound to 127.0.0.1:P, with throw-away data and its
log in DIR. Once it answers and bucket/container NAME exists, exactly one line
is printed to stdout:

    READY {"DISTTAGS_STORE": "...", ...}

whose JSON object holds the environment variables an object_store 0.14 user
sets to reach that store. Then it waits until SIGTERM/SIGINT/SIGHUP, until its
stdin reaches EOF (when stdin is a pipe, socket or tty: so the emulator dies
with the parent that holds the pipe), or until the server exits; and on the
way out kills the server's whole process group and reaps it.

Exit status: 0 after a requested stop, 1 if the server failed to start or died
on its own (its log tail goes to stderr), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
from ports import free_port, free_port_pair, is_free  # noqa: E402 (beside this file)

KINDS = ("moto", "seaweedfs", "azurite", "gcs")

# Test credentials. Nothing here is secret.
S3_ACCESS_KEY = "disttagstest"
S3_SECRET_KEY = "disttagstestsecret"
S3_REGION = "us-east-1"
# Azurite's published development account (the same one the Azure docs list).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURE_API_VERSION = "2021-08-06"


def log(msg: str) -> None:
    print(f"[emulators/run] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Minimal HTTP + request signing helpers (also imported by verify scripts).


def http_request(port, method, path, headers=None, body=b"", timeout=5.0):
    """Send one request to 127.0.0.1:port; return (status, headers dict lower-cased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def s3_sign(method, port, path, query="", headers=None, body=b"",
            access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, region=S3_REGION):
    """Return headers carrying an AWS SigV4 signature for a path-style S3 request.

    `path` must already be URI-encoded (each segment percent-encoded once),
    `query` is the canonical query string (sorted, encoded) or "".
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    hdrs = {k.lower(): str(v).strip() for k, v in (headers or {}).items()}
    hdrs["host"] = f"127.0.0.1:{port}"
    hdrs["x-amz-date"] = amz_date
    hdrs["x-amz-content-sha256"] = payload_hash
    signed = sorted(hdrs)
    canonical = "\n".join([
        method, path, query,
        "".join(f"{k}:{hdrs[k]}\n" for k in signed),
        ";".join(signed), payload_hash,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date, scope,
        hashlib.sha256(canonical.encode()).hexdigest(),
    ])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), "s3"),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    hdrs["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    del hdrs["host"]  # http.client adds the same value itself
    return hdrs


def s3_request(port, method, path, query="", headers=None, body=b"", **kw):
    hdrs = s3_sign(method, port, path, query, headers, body, **kw)
    return http_request(port, method, path + ("?" + query if query else ""), hdrs, body)


def azure_sign(method, port, path, query: dict | None = None, headers=None, body=b"",
               account=AZURITE_ACCOUNT, key_b64=AZURITE_KEY):
    """Return headers carrying an Azure Storage SharedKey signature.

    `path` is the path-style URL path, starting with /ACCOUNT/.
    """
    hdrs = {k.lower(): str(v) for k, v in (headers or {}).items()}
    hdrs.setdefault("x-ms-date", formatdate(usegmt=True))
    hdrs.setdefault("x-ms-version", AZURE_API_VERSION)
    length = str(len(body)) if body else ""
    if body or method in ("PUT", "POST"):
        hdrs["content-length"] = str(len(body))
    std = ["content-encoding", "content-language", None, "content-md5", "content-type",
           "date", "if-modified-since", "if-match", "if-none-match",
           "if-unmodified-since", "range"]
    parts = [method]
    for name in std:
        parts.append(length if name is None else hdrs.get(name, ""))
    canon_headers = "".join(
        f"{k}:{hdrs[k].strip()}\n" for k in sorted(hdrs) if k.startswith("x-ms-"))
    canon_resource = f"/{account}{path}"
    for k in sorted(query or {}):
        canon_resource += f"\n{k.lower()}:{query[k]}"
    string_to_sign = "\n".join(parts) + "\n" + canon_headers + canon_resource
    sig = base64.b64encode(hmac.new(base64.b64decode(key_b64), string_to_sign.encode(),
                                    hashlib.sha256).digest()).decode()
    hdrs["authorization"] = f"SharedKey {account}:{sig}"
    return hdrs


def azure_request(port, method, path, query: dict | None = None, headers=None, body=b"", **kw):
    hdrs = azure_sign(method, port, path, query, headers, body, **kw)
    q = urllib.parse.urlencode(query or {})
    return http_request(port, method, path + ("?" + q if q else ""), hdrs, body)


# --------------------------------------------------------------------------
# Per-emulator specs.


def tool(tools: Path, name: str) -> str:
    p = tools / "bin" / name
    if not os.access(p, os.X_OK):
        raise SystemExit(f"run.py: {p} is missing: run scripts/install-tools emulators first")
    return str(p)


def s3_env(port, bucket):
    return {
        "DISTTAGS_STORE": f"s3://{bucket}",
        "AWS_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_REGION": S3_REGION,
        "AWS_BUCKET": bucket,
    }


def s3_create_bucket(port, bucket):
    status, _, body = s3_request(port, "PUT", "/" + urllib.parse.quote(bucket, safe=""))
    if status == 200 or b"BucketAlreadyOwnedByYou" in body:
        return True
    if status == 400:
        raise ValueError(f"create bucket: HTTP {status}: {body[:300]!r}")
    raise RuntimeError(f"create bucket: HTTP {status}: {body[:300]!r}")


def moto_cmd(a, tools):
    return [tool(tools, "moto_server"), "-H", "127.0.0.1", "-p", str(a.port)], {}, None


def seaweedfs_cmd(a, tools):
    data = a.data / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    # An identity with the test credentials: signatures are checked, so a
    # wrong key gets 403 like a real S3.
    cfg = a.data / "seaweedfs-s3.json"
    cfg.write_text(json.dumps({"identities": [{
        "name": "disttags",
        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}))
    weed = tool(tools, "weed")
    helped = subprocess.run([weed, "help"], capture_output=True, text=True)
    help_text = helped.stdout + helped.stderr
    common = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={cfg}"]
    if " mini " in help_text:
        # Every listener gets its own free loopback port so that parallel
        # runs do not collide on the defaults (9333, 8888, 23646, ...).
        cmd = [weed, "mini", f"-dir={data}", *common, f"-s3.port={a.port}",
               f"-s3.port.grpc={free_port()}",
               f"-master.port={free_port()}", f"-master.port.grpc={free_port()}",
               f"-volume.port={free_port()}", f"-volume.port.grpc={free_port()}",
               f"-filer.port={free_port()}", f"-filer.port.grpc={free_port()}",
               # 4.48's plugin worker dials admin.port+10000 whatever
               # -admin.port.grpc says, so leave that at its default.
               f"-admin.port={free_port_pair()}",
               "-webdav=false",
               "-s3.port.iceberg=0", "-s3.port.lance=0"]
    else:
        # Older weed without `mini`: the classic all-in-one server.
        cmd = [weed, "server", f"-dir={data}", *common, "-filer", "-s3",
               f"-s3.port={a.port}", f"-s3.port.grpc={free_port()}",
               f"-master.port={free_port()}", f"-master.port.grpc={free_port()}",
               f"-volume.port={free_port()}", f"-volume.port.grpc={free_port()}",
               f"-filer.port={free_port()}", f"-filer.port.grpc={free_port()}",
               "-s3.port.iceberg=0", "-s3.port.lance=0"]
    # weed also listens on Unix sockets /tmp/seaweedfs-<what>-<port>.sock
    # (fixed /tmp, not $TMPDIR) and leaves some behind even after a clean
    # stop: remove the ones named after our ports once it is gone.
    ports = {int(x.rsplit("=", 1)[1]) for x in cmd if re.match(r"-[\w.]*port[\w.]*=\d+$", x)}
    ports |= {p + 10000 for p in ports}

    def cleanup():
        for sock in Path("/tmp").glob("seaweedfs-*.sock"):
            m = re.search(r"-(\d+)\.sock$", sock.name)
            if m and int(m.group(1)) in ports:
                try:
                    sock.unlink()
                except OSError:
                    pass
    # TMPDIR: glog and friends keep their files in DIR.
    return cmd, {"TMPDIR": str(a.data)}, cleanup


def azurite_cmd(a, tools):
    loc = a.data / "azurite"
    loc.mkdir(parents=True, exist_ok=True)
    return [tool(tools, "azurite-blob"), "--blobHost", "127.0.0.1", "--blobPort", str(a.port),
            "--location", str(loc), "--skipApiVersionCheck", "--disableTelemetry"], {}, None


def gcs_cmd(a, tools):
    root = a.data / "gcs"
    root.mkdir(parents=True, exist_ok=True)
    return [tool(tools, "fake-gcs-server"), "-scheme", "http", "-host", "127.0.0.1",
            "-port", str(a.port), "-public-host", f"127.0.0.1:{a.port}",
            "-external-url", f"http://127.0.0.1:{a.port}",
            "-backend", "filesystem", "-filesystem-root", str(root),
            "-log-level", "warn"], {}, None


def azurite_create_container(port, name):
    status, h, body = azure_request(port, "PUT", f"/{AZURITE_ACCOUNT}/{name}",
                                    {"restype": "container"})
    if status == 201 or h.get("x-ms-error-code") == "ContainerAlreadyExists":
        return True
    if status == 400:
        raise ValueError(f"create container: HTTP {status}: {body[:300]!r}")
    raise RuntimeError(f"create container: HTTP {status}: {body[:300]!r}")


def azurite_env(port, name):
    return {
        "DISTTAGS_STORE": f"az://{name}",
        "AZURE_STORAGE_USE_EMULATOR": "true",
        "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{port}",
        "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
        "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
        "AZURE_CONTAINER_NAME": name,
    }


def gcs_create_bucket(port, name):
    status, _, body = http_request(port, "POST", "/storage/v1/b",
                                   {"Content-Type": "application/json"},
                                   json.dumps({"name": name}).encode())
    if status in (200, 201, 409):
        return True
    if status == 400:
        raise ValueError(f"create bucket: HTTP {status}: {body[:300]!r}")
    raise RuntimeError(f"create bucket: HTTP {status}: {body[:300]!r}")


def gcs_env(port, name):
    key = {
        "gcs_base_url": f"http://127.0.0.1:{port}",
        "disable_oauth": True,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    }
    return {
        "DISTTAGS_STORE": f"gs://{name}",
        "GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps(key, separators=(",", ":")),
        "GOOGLE_BUCKET": name,
        # The emulator speaks plain HTTP; object_store refuses http:// endpoints unless told.
        "GOOGLE_ALLOW_HTTP": "true",
    }


SPECS = {
    "moto": (moto_cmd, s3_create_bucket, s3_env),
    "seaweedfs": (seaweedfs_cmd, s3_create_bucket, s3_env),
    "azurite": (azurite_cmd, azurite_create_container, azurite_env),
    "gcs": (gcs_cmd, gcs_create_bucket, gcs_env),
}


# --------------------------------------------------------------------------
# Process handling.


def _child_setup():
    os.setsid()  # own process group: killpg reaches everything it spawns
    try:  # Linux: SIGTERM the server if run.py itself dies without cleanup
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # anything left in the group (also after the leader exited)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as e:
        return f"(no log: {e})"


def stdin_watchable() -> bool:
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True, help="throw-away data + log dir")
    ap.add_argument("--bucket", required=True, help="bucket / container to create")
    default_tools = os.environ.get("DISTTAGS_TOOLS") or str(
        Path(__file__).resolve().parent.parent.parent / ".tools")
    ap.add_argument("--tools", type=Path, default=Path(default_tools))
    ap.add_argument("--timeout", type=float, default=60.0, help="start-up timeout, seconds")
    a = ap.parse_args()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", a.bucket) or "--" in a.bucket:
        ap.error("--bucket must be 3-63 of a-z 0-9 - (no leading/trailing/double '-'), "
                 "a name valid for S3, Azure and GCS alike")
    if not 0 < a.port < 65536:
        ap.error("--port out of range")
    a.data = a.data.resolve()
    a.data.mkdir(parents=True, exist_ok=True)
    tools = a.tools.resolve()

    # Fail fast (rather than talk to someone else's server) if P is taken.
    if not is_free(a.port, reuse_addr=True):
        log(f"127.0.0.1:{a.port} is not free (something else is bound to it)")
        return 1

    make_cmd, create, make_env = SPECS[a.kind]
    cmd, extra_env, cleanup = make_cmd(a, tools)
    logfile = a.data / f"{a.kind}.log"
    env = dict(os.environ, **extra_env)
    # The server must not pick up proxy settings or test credentials of ours.
    for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"

    stop = threading.Event()
    why = {"reason": None}

    def request_stop(reason):
        if why["reason"] is None:
            why["reason"] = reason
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: request_stop(f"signal {signal.Signals(s).name}"))

    t0 = time.monotonic()
    with open(logfile, "ab") as lf:
        lf.write(f"\n=== {time.ctime()} {' '.join(cmd)}\n".encode())
        lf.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                cwd=a.data, env=env, preexec_fn=_child_setup)
    log(f"{a.kind}: pid {proc.pid}, log {logfile}")

    def watch_child():
        proc.wait()
        request_stop(f"server exited with status {proc.returncode}")

    threading.Thread(target=watch_child, daemon=True).start()

    try:
        # Wait for it to answer and create the bucket (retrying: S3 front
        # ends answer before their storage is ready).
        deadline = t0 + a.timeout
        last = "not started"
        while True:
            if stop.is_set():
                log(f"{a.kind} failed to start: {why['reason']}; log tail:\n{tail(logfile)}")
                return 1
            if time.monotonic() > deadline:
                log(f"{a.kind} not ready after {a.timeout:.0f}s (last error: {last}); "
                    f"log tail:\n{tail(logfile)}")
                return 1
            try:
                if create(a.port, a.bucket):
                    break
            except (OSError, http.client.HTTPException, RuntimeError) as e:
                last = str(e)
            except ValueError as e:  # the server said no for good
                log(f"{a.kind}: {e}; log tail:\n{tail(logfile)}")
                return 1
            stop.wait(0.2)

        if proc.poll() is not None:
            log(f"{a.kind} exited during start-up ({proc.returncode}); log tail:\n{tail(logfile)}")
            return 1
        log(f"{a.kind} ready on 127.0.0.1:{a.port} after {time.monotonic() - t0:.1f}s")
        print("READY " + json.dumps(make_env(a.port, a.bucket)), flush=True)

        if stdin_watchable():
            def watch_stdin():
                try:
                    while os.read(0, 65536):
                        pass
                except OSError:
                    pass
                request_stop("stdin closed")
            threading.Thread(target=watch_stdin, daemon=True).start()
        else:
            log("stdin is not a pipe/tty: not watching it; stop with SIGTERM")

        while not stop.wait(1.0):
            pass
        died = proc.poll() is not None and why["reason"].startswith("server exited")
        if died:
            log(f"{a.kind} died: {why['reason']}; log tail:\n{tail(logfile)}")
        else:
            log(f"stopping {a.kind} ({why['reason']})")
        return 1 if died else 0
    finally:
        stop_group(proc)
        if cleanup:
            cleanup()


if __name__ == "__main__":
    sys.exit(main())
