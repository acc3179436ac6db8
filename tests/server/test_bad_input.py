"""llm8-server under bad input: malformed JSON, wrong types, huge and negative numbers, unknown
fields, invalid UTF-8, a 100 MB body, 1,000 half-open connections, and 10,000 malformed requests
beside 8 live streams. Each bad request must get a clear 4xx (with OpenAI's error body when it
has one) or be dropped, and the server must keep serving: the 8 streams finish with the text
they give alone.

    python3 test_bad_input.py --server build/tools/server/llm8-server

Standard library only (no `openai` needed).
"""
import concurrent.futures
import http.client
import json
import os
import random
import resource
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_util  # noqa: E402

SERVER = server_util.arg("--server")
MSGS = [{"role": "user", "content": "Hi"}]


def bad_json_bodies():
    """(path, body bytes) pairs that must each get a 400."""
    chat = "/v1/chat/completions"
    cmpl = "/v1/completions"

    def c(**kw):
        d = {"messages": MSGS}
        d.update(kw)
        return json.dumps(d).encode()

    out = [
        (chat, b""), (chat, b"{"), (chat, b'{"messages": [}'), (chat, b"null"), (chat, b"[]"),
        (chat, b'"str"'), (chat, b"123"), (chat, b"{}"), (chat, b"\x00\x01\x02"),
        (chat, b'{"messages": [{"role": "user", "content": "x"}]'),  # unterminated
        (chat, b'{"messages": [{"role": "user", "content": "x"}]}}'),  # trailing
        (chat, c(messages="hi")), (chat, c(messages=[])), (chat, c(messages=[1])),
        (chat, c(messages=[{"role": "user", "content": 5}])),
        (chat, c(messages=[{"role": "wizard", "content": "x"}])),
        (chat, c(max_tokens="12")), (chat, c(max_tokens=1.5)), (chat, c(max_tokens=-1)),
        (chat, c(max_tokens=-2 ** 63)), (chat, c(max_tokens=0)), (chat, c(max_tokens=2 ** 70)),
        (chat, c(max_tokens=10 ** 9)), (chat, c(temperature="hot")), (chat, c(temperature=1e308)),
        (chat, c(temperature=-0.5)), (chat, c(top_p=2)), (chat, c(top_k=-3)),
        (chat, c(seed="x")), (chat, c(seed=2 ** 65)), (chat, c(stream="yes")), (chat, c(stop=5)),
        (chat, c(stop=[None])), (chat, c(logit_bias=[1, 2])), (chat, c(logit_bias={"x": 1})),
        (chat, c(logit_bias={"999999999999": 1})), (chat, c(logit_bias={"1": 1e9})),
        (chat, c(n="2")), (chat, c(n=1000)), (chat, c(frobnicate=True)),
        (chat, c(top_logprobs=5)), (chat, c(logprobs=True, top_logprobs=100)),
        (chat, c(stream_options={"include_usage": True})),
        (chat, b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}'),
        (chat, b'{"messages": [{"role": "user", "content": "\xff\xfe\xfd"}]}'),
        (chat, b'{"messages": [{"role": "user", "content": "\xc0\xaf"}]}'),  # overlong
        (chat, b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}'),  # surrogate
        (chat, b'{"messages": [{"role": "user", "content": "\\ud800"}]}'),
        (chat, b"[" * 100000), (chat, b'{"a":' * 5000 + b"1" + b"}" * 5000),
        (cmpl, b'{"prompt": 5}'), (cmpl, b'{"prompt": [1, -1]}'), (cmpl, b'{"prompt": [99999]}'),
        (cmpl, b'{"prompt": "x", "echo": true}'), (cmpl, b'{}'),
        (cmpl, json.dumps({"prompt": "word " * 2000}).encode()),  # longer than the context
        ("/tokenize", b'{"content": 1}'), ("/detokenize", b'{"tokens": [-5]}'),
        ("/detokenize", b'{"tokens": "abc"}'),
    ]
    return out


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes on a new connection; returns the status code, or None when dropped."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while b"\r\n" not in buf:
            part = s.recv(4096)
            if not part:
                break
            buf += part
        if not buf.startswith(b"HTTP/1.1 "):
            return None
        return int(buf[9:12])
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return None
    finally:
        s.close()


RAW_BAD = [
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
    b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    b"GET /health HTTP/9.9\r\n\r\n",
    b"\r\n\r\n\r\n",
    b"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n\xff\xff\xff\xff\xff",
]


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 1,000 client sockets in this process.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        cls.srv = server_util.Server(SERVER, "-np", "8", "-c", "256", "--log-disable",
                                     "--max-queue", "64")

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "llm8-server exited with %d:\n%s" % (rc, cls.srv.log_text()[-4000:])

    def tearDown(self):
        self.assertTrue(self.srv.alive(), self.srv.log_text()[-4000:])
        self.assertEqual(self.srv.get("/health")[0], 200)

    def check_error_body(self, status, body, what):
        self.assertTrue(400 <= status < 500, "%s -> %d %r" % (what, status, body[:200]))
        err = json.loads(body)["error"]
        self.assertIsInstance(err["message"], str)
        self.assertIn("type", err)
        self.assertIn("param", err)
        self.assertIn("code", err)

    def test_bad_json_bodies(self):
        for path, body in bad_json_bodies():
            status, resp = self.srv.post(path, body, {"Content-Type": "application/json"})
            self.assertEqual(status, 400, "%r -> %d %r" % (body[:80], status, resp[:200]))
            self.check_error_body(status, resp, body[:80])

    def test_raw_http_garbage(self):
        for data in RAW_BAD:
            status = raw_exchange(self.srv.port, data)
            self.assertTrue(status is None or 400 <= status < 500, "%r -> %r" % (data[:40], status))
        status, body = self.srv.get("/no/such/endpoint")
        self.assertEqual(status, 404)
        self.check_error_body(status, body, "404")
        status, body = self.srv.get("/v1/chat/completions")  # GET on a POST endpoint
        self.check_error_body(status, body, "GET")

    def test_100mb_body(self):
        size = 100 * 1000 * 1000
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=60)
        head = ("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                "\r\nContent-Length: %d\r\n\r\n" % size).encode()
        status = None
        try:
            s.sendall(head)
            chunk = b" " * (1 << 20)
            sent = 0
            while sent < size:
                s.sendall(chunk)
                sent += len(chunk)
            s.shutdown(socket.SHUT_WR)
            buf = s.recv(4096)
            if buf.startswith(b"HTTP/1.1 "):
                status = int(buf[9:12])
        except (ConnectionResetError, BrokenPipeError):
            pass  # dropped before all of it was read
        finally:
            s.close()
        self.assertIn(status, (None, 413))
        status, body = self.srv.post("/v1/chat/completions", {"messages": MSGS, "max_tokens": 2})
        self.assertEqual(status, 200, body)

    def test_1000_half_open_connections(self):
        socks = []
        try:
            for i in range(1000):
                s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=30)
                # Half a request: a header without its end, or a body shorter than announced.
                if i % 2:
                    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
                else:
                    s.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
                socks.append(s)
            t0 = time.time()
            status, body = self.srv.post("/v1/completions",
                                         {"prompt": "Once upon a time", "max_tokens": 8,
                                          "temperature": 0})
            self.assertEqual(status, 200, body)
            self.assertLess(time.time() - t0, 20)
        finally:
            for s in socks:
                s.close()

    def test_10000_malformed_beside_8_live_streams(self):
        prompts = ["Once upon a time", "The cat", "Lily and Tom went", "One day a big dog",
                   "The sun was", "A little bird", "Tim had a red ball", "Mom said"]

        def body(i):
            return {"model": "m", "messages": [{"role": "user", "content": prompts[i]}],
                    "max_tokens": 160, "seed": 7 + i, "temperature": 0.8, "stream": True,
                    "ignore_eos": True}

        def stream(i):
            text, finish, done = "", None, False
            for ev in server_util.sse_stream(self.srv.port, "/v1/chat/completions", body(i)):
                if ev == "[DONE]":
                    done = True
                    break
                self.assertNotIn("error", ev)
                for ch in ev["choices"]:
                    text += ch["delta"].get("content") or ""
                    finish = ch["finish_reason"] or finish
            return text, finish, done

        alone = [stream(i) for i in range(8)]
        bad = bad_json_bodies()
        counts = {"4xx": 0, "dropped": 0, "other": []}
        lock = threading.Lock()
        n_total = 10000

        def flood(seed, n):
            rng = random.Random(seed)
            conn = None
            for k in range(n):
                if rng.random() < 0.05:
                    st = raw_exchange(self.srv.port, rng.choice(RAW_BAD))
                else:
                    path, data = rng.choice(bad)
                    if len(data) > 20000:
                        data = data[:20000]
                    try:
                        if conn is None:
                            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port,
                                                              timeout=30)
                        conn.request("POST", path, data, {"Content-Type": "application/json"})
                        r = conn.getresponse()
                        r.read()
                        st = r.status
                        if r.getheader("Connection", "").lower() == "close":
                            conn.close()
                            conn = None
                    except (http.client.HTTPException, OSError):
                        st = None
                        conn = None
                with lock:
                    if st is None:
                        counts["dropped"] += 1
                    elif 400 <= st < 500:
                        counts["4xx"] += 1
                    else:
                        counts["other"].append(st)
            if conn:
                conn.close()

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            floods = [ex.submit(flood, s, n_total // 4) for s in range(4)]
            live = [ex.submit(stream, i) for i in range(8)]
            results = [f.result(timeout=300) for f in live]
            for f in floods:
                f.result(timeout=300)
        print("10,000 malformed requests beside 8 streams: %d 4xx, %d dropped, %.1f s" %
              (counts["4xx"], counts["dropped"], time.time() - t0))
        self.assertEqual(counts["other"], [])
        self.assertEqual(counts["4xx"] + counts["dropped"], n_total)
        for i in range(8):
            self.assertTrue(results[i][2], "stream %d did not end with [DONE]" % i)
            self.assertEqual(results[i][1], "length")
            self.assertEqual(results[i][0], alone[i][0], "stream %d" % i)
        m = self.srv.metrics()
        self.assertEqual(m["llm8_kv_blocks_used"] > 0, True)  # cached prefixes stay
        self.assertEqual(m["llm8_sequences_running"], 0)


if __name__ == "__main__":
    if not SERVER:
        sys.exit("usage: test_bad_input.py --server PATH")
    unittest.main(verbosity=2)
