"""Starts llm8-server for a test and stops it afterwards (tests/server/*.py).

The server listens on a free port (--port 0) and prints it on stderr; its whole stderr goes to
a log file that is shown when a test fails.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def skip(msg):
    # ctest marks the test skipped on this line (SKIP_REGULAR_EXPRESSION).
    print("SKIP: " + msg)
    sys.exit(0)


def arg(name, default=None):
    """--name VALUE from the command line (the ctest registration passes these)."""
    if name in sys.argv:
        i = sys.argv.index(name)
        val = sys.argv[i + 1]
        del sys.argv[i:i + 2]
        return val
    return default


class Server:
    def __init__(self, binary, *flags, env=None):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="llm8-server-", suffix=".log",
                                               delete=False)
        cmd = [binary, "--port", "0", *flags]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("llm8-server exited with %d:\n%s" %
                                   (self.proc.returncode, self.log_text()))
            m = re.search(r"listening on http://[^:]+:(\d+)", self.log_text())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("llm8-server did not start:\n" + self.log_text())
        self.base = "http://127.0.0.1:%d" % self.port

    def log_text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns the exit status (0: a clean shutdown, no sanitizer report)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def get(self, path, headers=None):
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST",
                                     headers=headers or {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self):
        status, body = self.get("/metrics", self.auth_headers())
        assert status == 200, body
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.split()
                out[k] = float(v)
        return out

    api_key = None

    def auth_headers(self):
        return {"Authorization": "Bearer " + self.api_key} if self.api_key else {}


def sse_stream(port, path, body, timeout=120):
    """POSTs a streaming request over a raw connection; yields each event's JSON (or "[DONE]")."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError("status %d: %s" % (r.status, r.read()))
    try:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            yield data if data == "[DONE]" else json.loads(data)
            if data == "[DONE]":
                return
    finally:
        conn.close()
