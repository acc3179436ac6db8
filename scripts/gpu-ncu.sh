#!/usr/bin/env bash
# On the GPU machine: decode with and without the fused GEMVs, and an ncu summary (duration,
# DRAM throughput) of every kernel of one decode step of a random 7B model.
set -uo pipefail
GPU_TARGETS="llm8-bench llm8-mkmodel" source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
$B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type ${TYPE:-q4_0} --vocab .dev/data/vocab/ggml-vocab-llama-spm.gguf -o /tmp/m.gguf 2>&1 | tail -1
echo "== unfused (default)"; $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 3 | tail -1
echo "== split layout"; LLM8_SPLIT=1 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 3 | tail -1
echo "== fused"; LLM8_FUSE=1 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 3 | tail -1
echo "== ncu (one decode step, graphs off)"
LLM8_NO_GRAPH=1 timeout 300 ncu --clock-control none --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    --launch-skip 400 --launch-count 260 --csv $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 3 -r 1 > "$OUT/ncu.csv" 2> "$OUT/ncu.err"
python3 - "$OUT/ncu.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; rows = rows[1:]
ki, mi, vi = hdr.index("Kernel Name"), hdr.index("Metric Name"), hdr.index("Metric Value")
agg = collections.defaultdict(lambda: [0.0, 0, 0.0, 0])
for r in rows:
    name = r[ki].split("(")[0].split("<")[0][:40] + ("<" + r[ki].split("<")[1].split(",")[0] if "<" in r[ki] else "")
    v = float(r[vi].replace(",", ""))
    if r[mi].startswith("gpu__time"): agg[name][0] += v; agg[name][1] += 1
    else: agg[name][2] += v; agg[name][3] += 1
tot = sum(a[0] for a in agg.values())
print(f"total {tot/1e3:.1f} us over the captured kernels")
for k, a in sorted(agg.items(), key=lambda x: -x[1][0]):
    print(f"{k:60s} {a[0]/1e3:9.1f} us  n={a[1]:4d}  avg {a[0]/max(a[1],1)/1e3:7.2f} us  dram {a[2]/max(a[3],1):5.1f}%")
PY
