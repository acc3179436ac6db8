#!/usr/bin/env python3
"""The same work as llm8-bench-sampling, timed through PyTorch's sort-based path and through
FlashInfer's flashinfer.sampling, in the same process on the same GPU.

Work per call: B rows of V fp32 logits ~ N(0, 2^2); softmax with temperature T, top-k k, top-p p,
one token per row.
  torch:           softmax(l / T), sort, cumsum, mask (top-p, then positions >= k), multinomial
  fi_softmax_joint: flashinfer.sampling.softmax(l, temperature=T) then
                   top_k_top_p_sampling_from_probs(..., filter_apply_order="joint")
                   (the BRIEF's anchor for FlashInfer)
  fi_probs_only:   the sampling kernel alone, on precomputed probabilities
  (top_k_top_p_sampling_from_logits needs FlashInfer's "topk" JIT module, not prebuilt here.)

Timing as in main.cpp: a spin kernel holds the stream while all calls are enqueued, a CUDA event
before each call, median over the calls; inputs rotate over >= 3x the L2.

  python3 bench_torch_flashinfer.py [--json out.json] [--llm8 llm8.json] [--md table.md]
"""
import argparse
import datetime
import inspect
import json
import math
import statistics
import sys
import time
import traceback

import torch


def timed(fn, nsets, reps, warmup=10):
    for i in range(warmup):
        fn(i % nsets)
    torch.cuda.synchronize()
    # host cost of one call, to size the spin that hides the enqueue
    t0 = time.perf_counter()
    for i in range(5):
        fn(i % nsets)
    torch.cuda.synchronize()
    per_call = (time.perf_counter() - t0) / 5
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    torch.cuda._sleep(int(min(2e9 * per_call * reps * 1.5 + 2e6, 4e9)))
    for i in range(reps):
        ev[i].record()
        fn(i % nsets)
    ev[reps].record()
    torch.cuda.synchronize()
    us = sorted(ev[i].elapsed_time(ev[i + 1]) * 1000.0 for i in range(reps))
    q = lambda f: us[int(f * (len(us) - 1) + 0.5)]
    return {"median_us": statistics.median(us), "p10_us": q(0.1), "p90_us": q(0.9)}


def torch_sample(logits, k, p, t):
    probs = torch.softmax(logits / t, dim=-1)
    sp, si = torch.sort(probs, dim=-1, descending=True)
    cum = sp.cumsum(dim=-1)
    mask = (cum - sp) > p
    mask[:, k:] = True
    sp = sp.masked_fill(mask, 0.0)
    pick = torch.multinomial(sp, 1)
    return si.gather(-1, pick)


def load_flashinfer():
    try:
        import flashinfer.sampling as fs
        return fs, None
    except Exception:
        return None, traceback.format_exc(limit=3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="1,16,64,256")
    ap.add_argument("--vocab", default="32000,128256,151936")
    ap.add_argument("-k", type=int, default=50)
    ap.add_argument("-p", type=float, default=0.9)
    ap.add_argument("-t", type=float, default=0.8)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--torch-reps", type=int, default=60)
    ap.add_argument("--json")
    ap.add_argument("--llm8", help="llm8-bench-sampling JSON to merge into the table")
    ap.add_argument("--md", help="write the combined markdown table here")
    args = ap.parse_args()
    dev = torch.cuda.get_device_properties(0)
    l2 = dev.L2_cache_size
    k, p, t = args.k, args.p, args.t
    fs, fi_err = load_flashinfer()
    out = {"gpu": dev.name, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
           "params": {"top_k": k, "top_p": p, "temperature": t}, "results": []}
    if fs is None:
        print("flashinfer unavailable:\n" + fi_err, file=sys.stderr)
        out["flashinfer_error"] = fi_err
    else:
        import flashinfer
        out["flashinfer"] = getattr(flashinfer, "__version__", "?")
        for name in ("softmax", "top_k_top_p_sampling_from_probs", "top_k_top_p_sampling_from_logits"):
            f = getattr(fs, name, None)
            print(f"flashinfer.sampling.{name}: {inspect.signature(f) if f else 'absent'}", flush=True)

    for V in [int(x) for x in args.vocab.split(",")]:
        for B in [int(x) for x in args.batch.split(",")]:
            set_bytes = B * V * 4
            nsets = max(2, min(8192, math.ceil(3 * l2 / set_bytes)))
            g = torch.Generator(device="cuda").manual_seed(B * 1000003 + V)
            logits = torch.randn((nsets, B, V), device="cuda", generator=g) * 2.0
            rows = []

            def rec(impl, r, extra=None):
                r = dict(r, impl=impl, B=B, V=V, GBps=set_bytes / (r["median_us"] * 1e-6) / 1e9)
                if extra:
                    r.update(extra)
                out["results"].append(r)
                rows.append(r)
                print(f"| {impl} | {B} | {V} | {r['median_us']:.1f} | {r['p10_us']:.1f} | {r['p90_us']:.1f} |",
                      flush=True)

            rec("torch", timed(lambda i: torch_sample(logits[i], k, p, t), nsets, args.torch_reps))
            if fs is not None:
                try:
                    def fi_joint(i):
                        probs = fs.softmax(logits[i], temperature=t)
                        return fs.top_k_top_p_sampling_from_probs(probs, k, p, filter_apply_order="joint")
                    tok = fi_joint(0)
                    assert int(tok.min()) >= 0 and int(tok.max()) < V
                    rec("fi_softmax_joint", timed(fi_joint, nsets, args.reps))
                except Exception:
                    out.setdefault("errors", []).append(traceback.format_exc(limit=2))
                    print(traceback.format_exc(limit=2), file=sys.stderr)
                try:
                    probs_sets = torch.softmax(logits / t, dim=-1)
                    rec("fi_probs_only", timed(
                        lambda i: fs.top_k_top_p_sampling_from_probs(probs_sets[i], k, p, filter_apply_order="joint"),
                        nsets, args.reps))
                    del probs_sets
                except Exception:
                    out.setdefault("errors", []).append(traceback.format_exc(limit=2))
                    print(traceback.format_exc(limit=2), file=sys.stderr)
            del logits
            torch.cuda.empty_cache()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)

    # combined table: llm8 vs torch vs FlashInfer, same run
    llm8 = {}
    if args.llm8:
        try:
            with open(args.llm8) as f:
                for r in json.load(f)["results"]:
                    llm8.setdefault((r["B"], r["V"]), r)  # first (automatic cluster) entry
        except Exception as e:
            print(f"cannot read {args.llm8}: {e}", file=sys.stderr)
    res = {(r["impl"], r["B"], r["V"]): r["median_us"] for r in out["results"]}
    lines = [f"GPU: {dev.name}, {out['date']}, torch {torch.__version__}, flashinfer {out.get('flashinfer', 'n/a')}; "
             f"top-k {k}, top-p {p}, T {t}; median us per call",
             "",
             "| V | B | llm8 | FlashInfer softmax+joint | FlashInfer sampling only | torch sort | llm8 speedup vs FI |",
             "|---|---|---|---|---|---|---|"]
    for V in [int(x) for x in args.vocab.split(",")]:
        for B in [int(x) for x in args.batch.split(",")]:
            l = llm8.get((B, V), {}).get("median_us")
            fj = res.get(("fi_softmax_joint", B, V))
            fp = res.get(("fi_probs_only", B, V))
            tt = res.get(("torch", B, V))
            f = lambda x: f"{x:.1f}" if x is not None else "n/a"
            sp = f"{fj / l:.2f}x" if (l and fj) else "n/a"
            lines.append(f"| {V} | {B} | {f(l)} | {f(fj)} | {f(fp)} | {f(tt)} | {sp} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
