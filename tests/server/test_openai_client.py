"""llm8-server driven by the official `openai` Python package (and raw HTTP where the package
cannot see what is checked, e.g. /metrics).

    python3 test_openai_client.py --server build/tools/server/llm8-server [--data ../shared/data]

Most checks use the embedded stories260K model (always there); the seeded batch check runs on
the trained tiny-llama-hd64-q8_0.gguf too when the shared data is present. Skips with a message
when the `openai` package is not installed (scripts/test.sh installs it into a venv).
"""
import concurrent.futures
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_util  # noqa: E402

SERVER = server_util.arg("--server")
DATA = server_util.arg("--data", "")

try:
    import openai
except ImportError:
    server_util.skip("the Python package 'openai' is not installed (scripts/test.sh installs it "
                     "into build/pyvenv; pip install openai)")

KEY = "sk-test-llm8"
GREEDY = ", there was a little girl named Lily. She loved to play outside in the park."


def client(srv, key=KEY):
    return openai.OpenAI(base_url=srv.base + "/v1", api_key=key, max_retries=0, timeout=120)


class OpenAIClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = server_util.Server(SERVER, "-np", "4", "-c", "512", "--api-key", KEY)
        cls.srv.api_key = KEY
        cls.c = client(cls.srv)

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "llm8-server exited with %d:\n%s" % (rc, cls.srv.log_text()[-4000:])

    def tearDown(self):
        self.assertTrue(self.srv.alive(), self.srv.log_text()[-4000:])

    def test_models_and_health(self):
        models = self.c.models.list()
        self.assertEqual([m.id for m in models.data], ["stories260K"])
        status, body = self.srv.get("/health")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))

    def test_completion_greedy_matches_the_golden_text(self):
        r = self.c.completions.create(model="stories260K", prompt="Once upon a time",
                                      max_tokens=20, temperature=0)
        self.assertTrue(r.choices[0].text.startswith(GREEDY[:40]), r.choices[0].text)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 20)
        self.assertEqual(r.usage.prompt_tokens, 5)

    def test_completion_stream_equals_non_stream(self):
        args = dict(model="m", prompt="The little dog", max_tokens=24, temperature=0.9, seed=11)
        whole = self.c.completions.create(**args).choices[0].text
        parts, reasons = [], []
        for chunk in self.c.completions.create(stream=True, **args):
            parts.append(chunk.choices[0].text)
            reasons.append(chunk.choices[0].finish_reason)
        self.assertEqual("".join(parts), whole)
        self.assertEqual(reasons[-1], "length")

    def test_chat_non_stream_and_stream(self):
        msgs = [{"role": "system", "content": "You tell stories."},
                {"role": "user", "content": "Tell me about a cat."}]
        r = self.c.chat.completions.create(model="m", messages=msgs, max_tokens=16, seed=5)
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertIsInstance(r.choices[0].message.content, str)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 16)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + 16)
        text, roles, usage = "", [], None
        stream = self.c.chat.completions.create(model="m", messages=msgs, max_tokens=16, seed=5,
                                                stream=True,
                                                stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                if ch.delta.role:
                    roles.append(ch.delta.role)
                text += ch.delta.content or ""
        self.assertEqual(text, r.choices[0].message.content)
        self.assertEqual(roles, ["assistant"])
        self.assertEqual(usage.completion_tokens, 16)

    def test_stop_strings_and_max_tokens(self):
        r = self.c.completions.create(model="m", prompt="Once upon a time", max_tokens=40,
                                      temperature=0, stop=["girl", "zzz"])
        self.assertEqual(r.choices[0].text, ", there was a little ")
        self.assertEqual(r.choices[0].finish_reason, "stop")
        # The same in a stream: the held-back "gi..." never reaches the client.
        text = "".join(c.choices[0].text for c in self.c.completions.create(
            model="m", prompt="Once upon a time", max_tokens=40, temperature=0, stop="girl",
            stream=True))
        self.assertEqual(text, ", there was a little ")
        for n in (1, 7):
            r = self.c.completions.create(model="m", prompt="Once", max_tokens=n, temperature=0,
                                          extra_body={"ignore_eos": True})
            self.assertEqual(r.usage.completion_tokens, n)
            self.assertEqual(r.choices[0].finish_reason, "length")

    def test_logprobs_and_choices(self):
        r = self.c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=6, logprobs=True, top_logprobs=3, n=2,
                                           seed=3)
        self.assertEqual(len(r.choices), 2)
        self.assertEqual(r.usage.completion_tokens, 12)
        for ch in r.choices:
            lps = ch.logprobs.content
            self.assertEqual(len(lps), 6)
            for t in lps:
                self.assertLessEqual(t.logprob, 0.0)
                self.assertEqual(len(t.top_logprobs), 3)
                self.assertGreaterEqual(t.top_logprobs[0].logprob, t.top_logprobs[2].logprob)
            self.assertEqual("".join(t.token for t in lps), ch.message.content)
        r = self.c.completions.create(model="m", prompt="Once upon a time", max_tokens=4,
                                      temperature=0, logprobs=2)
        lp = r.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 4)
        self.assertEqual(len(lp.top_logprobs[0]), 2)
        # Greedy: the chosen token is the most likely one.
        self.assertAlmostEqual(lp.token_logprobs[0], max(lp.top_logprobs[0].values()), places=5)

    def test_errors(self):
        with self.assertRaises(openai.BadRequestError) as e:
            self.c.completions.create(model="m", prompt="x", max_tokens=-1)
        self.assertEqual(e.exception.status_code, 400)
        self.assertIn("max_tokens", str(e.exception))
        with self.assertRaises(openai.BadRequestError):
            self.c.chat.completions.create(model="m", messages=[], max_tokens=1)
        with self.assertRaises(openai.BadRequestError):
            self.c.completions.create(model="m", prompt="x", extra_body={"nonsense": 1})
        with self.assertRaises(openai.BadRequestError) as e:
            self.c.completions.create(model="m", prompt="word " * 600, max_tokens=4)
        self.assertIn("context", str(e.exception))
        with self.assertRaises(openai.AuthenticationError):
            client(self.srv, "wrong-key").models.list()
        status, _ = self.srv.get("/v1/models")  # no key at all
        self.assertEqual(status, 401)
        with self.assertRaises(openai.NotFoundError):
            self.c.embeddings.create(model="m", input="x")

    def test_tokenize_detokenize(self):
        h = dict(self.srv.auth_headers(), **{"Content-Type": "application/json"})
        status, body = self.srv.post("/tokenize", {"content": "Once upon a time"}, h)
        self.assertEqual(status, 200)
        ids = json.loads(body)["tokens"]
        self.assertGreater(len(ids), 2)
        status, body = self.srv.post("/detokenize", {"tokens": ids}, h)
        self.assertEqual(json.loads(body)["content"].strip(), "Once upon a time")

    def test_prefix_reuse(self):
        system = "Once upon a time there was a little girl named Lily who lived by the sea. " * 6
        before = self.srv.metrics()["llm8_prompt_tokens_reused_total"]
        a = self.c.chat.completions.create(
            model="m", max_tokens=4, seed=1,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": "A?"}])
        b = self.c.chat.completions.create(
            model="m", max_tokens=4, seed=1,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": "B?"}])
        h = dict(self.srv.auth_headers(), **{"Content-Type": "application/json"})
        n_system = len(json.loads(self.srv.post("/tokenize", {"content": system}, h)[1])["tokens"])
        cached = b.usage.prompt_tokens_details.cached_tokens
        # The second prefill starts after the shared system prompt (and the template's header).
        self.assertGreaterEqual(cached, n_system)
        self.assertLess(cached, b.usage.prompt_tokens)
        after = self.srv.metrics()["llm8_prompt_tokens_reused_total"]
        self.assertGreaterEqual(after - before, cached)
        self.assertGreater(a.usage.prompt_tokens, n_system)


class Cancellation(unittest.TestCase):
    """A client that goes away mid-stream: its sequence and KV blocks are freed at once."""

    def test_cancel_mid_stream_frees_blocks(self):
        srv = server_util.Server(SERVER, "-np", "2", "-c", "512", "--no-prefix-cache")
        try:
            c = client(srv)
            m0 = srv.metrics()
            self.assertEqual(m0["llm8_kv_blocks_used"], 0)
            stream = c.completions.create(model="m", prompt="Once upon a time", max_tokens=500,
                                          stream=True, seed=1, extra_body={"ignore_eos": True})
            got = 0
            for chunk in stream:
                got += 1
                if got == 5:
                    break
            m1 = srv.metrics()
            self.assertGreater(m1["llm8_kv_blocks_used"], 0)
            self.assertEqual(m1["llm8_sequences_running"], 1)
            stream.close()  # the connection goes away
            deadline = time.time() + 10
            while time.time() < deadline:
                m2 = srv.metrics()
                if m2["llm8_kv_blocks_used"] == 0 and m2["llm8_requests_cancelled_total"] == 1:
                    break
                time.sleep(0.05)
            self.assertEqual(m2["llm8_kv_blocks_used"], 0)
            self.assertEqual(m2["llm8_sequences_running"], 0)
            self.assertEqual(m2["llm8_requests_cancelled_total"], 1)
            # Far fewer tokens than asked were generated.
            self.assertLess(m2["llm8_tokens_predicted_total"], 400)
            r = c.completions.create(model="m", prompt="Once", max_tokens=3)
            self.assertEqual(r.usage.completion_tokens, 3)
        finally:
            srv.stop()


def seeded_alone_vs_batch(test, model_args, prompts, max_tokens):
    """Each seeded prompt alone, then all 8 at once: the same texts."""
    srv = server_util.Server(SERVER, "-np", "8", "-c", "256", *model_args)
    try:
        c = client(srv)

        def run(i):
            r = c.completions.create(model="m", prompt=prompts[i], max_tokens=max_tokens,
                                     temperature=0.8, top_p=1.0, seed=100 + i,
                                     extra_body={"top_k": 0, "min_p": 0.0})
            return r.choices[0].text

        alone = [run(i) for i in range(len(prompts))]
        with concurrent.futures.ThreadPoolExecutor(len(prompts)) as ex:
            batch = list(ex.map(run, range(len(prompts))))
        for i in range(len(prompts)):
            test.assertEqual(batch[i], alone[i], "prompt %d" % i)
        m = srv.metrics()
        test.assertGreater(m["llm8_batch_sequences"] + 0, 0)
        print("seeded texts identical alone and in a batch of %d (%s)" %
              (len(prompts), " ".join(model_args) or "stories260K"))
    finally:
        srv.stop()


class SeededBatch(unittest.TestCase):
    def test_stories260K(self):
        prompts = ["Once upon a time", "The cat", "Lily and Tom went", "One day a big dog",
                   "The sun was", "A little bird", "Tim had a red ball", "Mom said"]
        seeded_alone_vs_batch(self, [], prompts, 40)

    def test_tiny_llama_hd64_q8_0(self):
        path = os.path.join(DATA, "models", "tiny-llama-hd64-q8_0.gguf")
        if not DATA or not os.path.exists(path):
            self.skipTest("test data not found: " + path)
        prompts = ["The kernel", "In Python, a list", "Prince Andrew", "The function returns",
                   "To configure the", "Memory is allocated", "Natasha said", "The module"]
        seeded_alone_vs_batch(self, ["-m", path], prompts, 24)


if __name__ == "__main__":
    if not SERVER:
        sys.exit("usage: test_openai_client.py --server PATH [--data DIR]")
    unittest.main(verbosity=2)
