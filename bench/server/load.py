#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers (llm8-server, llama.cpp's llama-server, ...).

Replays N chat streams, C at a time, with prompt and output lengths drawn from a fixed
distribution (seeded: every run, and every server, gets the same requests), and reports
throughput and latency:

    python3 bench/server/load.py --url http://127.0.0.1:8080 -n 64 -c 8 \
        --prompt-len 64:512 --output-len 32:256 [--api-key KEY] [--json out.json]

- TTFT: request sent -> first content token; ITL: the gaps between content chunks of a stream
  (one token each on llm8-server and llama-server); E2E: the whole request.
- Output lengths are exact: `max_tokens` with `ignore_eos` (both servers honour it).
- Prompts are words from a fixed list, about one token each with Llama-style vocabularies; the
  server's own token counts (usage) are reported when it sends them.

Needs httpx (pip install httpx; scripts/test.sh puts it in build/pyvenv).
"""
import argparse
import asyncio
import json
import random
import statistics
import sys
import time

try:
    import httpx
except ImportError:
    sys.exit("load.py needs httpx: pip install httpx")

WORDS = ("the a little girl named Lily loved to play outside in park one day she saw big red ball "
         "wanted with it but was too high kernel memory module function returns list value "
         "system process file data time story cat dog sun bird tree house water light").split()


def lengths(spec):
    lo, _, hi = spec.partition(":")
    return int(lo), int(hi or lo)


def make_requests(n, prompt_len, output_len, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = rng.randint(*prompt_len)
        o = rng.randint(*output_len)
        text = " ".join(rng.choice(WORDS) for _ in range(p))
        out.append({"prompt": text, "prompt_words": p, "max_tokens": o, "seed": seed + i})
    return out


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


async def one(client, args, req, res):
    body = {"model": args.model, "stream": True, "max_tokens": req["max_tokens"],
            "temperature": args.temperature, "seed": req["seed"], "ignore_eos": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": req["prompt"]}]}
    headers = {"Authorization": "Bearer " + args.api_key} if args.api_key else {}
    t0 = time.perf_counter()
    first, last, gaps, chunks, usage, err = None, None, [], 0, None, None
    try:
        async with client.stream("POST", args.url.rstrip("/") + "/v1/chat/completions",
                                 json=body, headers=headers) as r:
            if r.status_code != 200:
                err = "HTTP %d: %s" % (r.status_code, (await r.aread())[:200])
            else:
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        break
                    ev = json.loads(data)
                    if ev.get("usage"):
                        usage = ev["usage"]
                    if "error" in ev:
                        err = str(ev["error"])
                    for ch in ev.get("choices", []):
                        if (ch.get("delta") or {}).get("content"):
                            now = time.perf_counter()
                            if first is None:
                                first = now
                            else:
                                gaps.append(now - last)
                            last = now
                            chunks += 1
    except (httpx.HTTPError, ValueError) as e:
        err = repr(e)
    t1 = time.perf_counter()
    res.append({"ttft": None if first is None else first - t0, "e2e": t1 - t0, "gaps": gaps,
                "chunks": chunks, "usage": usage, "error": err,
                "max_tokens": req["max_tokens"]})


async def run(args):
    reqs = make_requests(args.requests, lengths(args.prompt_len), lengths(args.output_len),
                         args.seed)
    res = []
    sem = asyncio.Semaphore(args.concurrency)
    limits = httpx.Limits(max_connections=args.concurrency + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(args.timeout), limits=limits) as client:

        async def guarded(req):
            async with sem:
                await one(client, args, req, res)

        t0 = time.perf_counter()
        await asyncio.gather(*(guarded(r) for r in reqs))
        wall = time.perf_counter() - t0
    return reqs, res, wall


def report(args, reqs, res, wall):
    ok = [r for r in res if r["error"] is None]
    errors = [r["error"] for r in res if r["error"] is not None]
    out_tok = sum((r["usage"] or {}).get("completion_tokens", r["chunks"]) for r in ok)
    in_tok = sum((r["usage"] or {}).get("prompt_tokens", 0) for r in ok)
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    itl = [g for r in ok for g in r["gaps"]]
    e2e = [r["e2e"] for r in ok]
    summary = {
        "url": args.url, "requests": len(reqs), "concurrency": args.concurrency,
        "prompt_len": args.prompt_len, "output_len": args.output_len, "seed": args.seed,
        "ok": len(ok), "errors": len(errors), "wall_s": wall,
        "requests_per_s": len(ok) / wall, "output_tokens": out_tok, "prompt_tokens": in_tok,
        "output_tokens_per_s": out_tok / wall, "total_tokens_per_s": (out_tok + in_tok) / wall,
        "ttft_ms": {"p50": pct(ttft, 50) * 1e3, "p99": pct(ttft, 99) * 1e3,
                    "mean": statistics.fmean(ttft) * 1e3 if ttft else float("nan")},
        "itl_ms": {"p50": pct(itl, 50) * 1e3, "p99": pct(itl, 99) * 1e3,
                   "mean": statistics.fmean(itl) * 1e3 if itl else float("nan")},
        "e2e_s": {"p50": pct(e2e, 50), "p99": pct(e2e, 99)},
        "first_errors": errors[:5],
    }
    print("%d requests (%d ok, %d errors), %d at a time, %.2f s" %
          (len(reqs), len(ok), len(errors), args.concurrency, wall))
    print("throughput: %.1f output tokens/s, %.1f tokens/s with prompts, %.2f requests/s" %
          (summary["output_tokens_per_s"], summary["total_tokens_per_s"],
           summary["requests_per_s"]))
    print("TTFT  p50 %8.1f ms   p99 %8.1f ms" % (summary["ttft_ms"]["p50"],
                                                summary["ttft_ms"]["p99"]))
    print("ITL   p50 %8.1f ms   p99 %8.1f ms" % (summary["itl_ms"]["p50"],
                                                summary["itl_ms"]["p99"]))
    print("E2E   p50 %8.2f s    p99 %8.2f s" % (summary["e2e_s"]["p50"], summary["e2e_s"]["p99"]))
    for e in errors[:5]:
        print("error:", e)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if not errors else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--model", default="default")
    ap.add_argument("-n", "--requests", type=int, default=32)
    ap.add_argument("-c", "--concurrency", type=int, default=8)
    ap.add_argument("--prompt-len", default="32:256", help="words per prompt, MIN:MAX uniform")
    ap.add_argument("--output-len", default="32:128", help="tokens per answer, MIN:MAX uniform")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", default="", help="write the summary here")
    args = ap.parse_args()
    reqs, res, wall = asyncio.run(run(args))
    sys.exit(report(args, reqs, res, wall))


if __name__ == "__main__":
    main()
