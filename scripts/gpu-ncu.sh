#!/usr/bin/env bash
# On the GPU machine: an ncu summary (duration, DRAM throughput, registers, achieved occupancy)
# of every kernel of one decode step of a random 7B model, per type in TYPES (graphs off, so
# each kernel is timed alone: launch gaps and PDL overlap are not in these figures).
set -uo pipefail
GPU_TARGETS="llm8-bench llm8-mkmodel" source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
for t in ${TYPES:-q4_0}; do
$B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type $t --vocab .dev/data/vocab/ggml-vocab-llama-spm.gguf -o /tmp/m.gguf 2>&1 | tail -1
echo "== ncu $t (one decode step, graphs off)"
LLM8_GRAPH=0 timeout 300 ncu --clock-control none --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread \
    --launch-skip ${SKIP:-400} --launch-count ${COUNT:-360} --csv $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 4 -r 1 > "$OUT/ncu-$t.csv" 2> "$OUT/ncu-$t.err"
python3 - "$OUT/ncu-$t.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; rows = rows[1:]
ki, mi, vi = hdr.index("Kernel Name"), hdr.index("Metric Name"), hdr.index("Metric Value")
agg = collections.defaultdict(lambda: collections.defaultdict(float))
cnt = collections.Counter()
for r in rows:
    k = r[ki]
    name = k.split("(")[0][:34] + ("<" + k.split("<")[1].split(">")[0][-24:] + ">" if "<" in k else "")
    v = float(r[vi].replace(",", ""))
    agg[name][r[mi]] += v
    if r[mi].startswith("gpu__time"): cnt[name] += 1
tot = sum(a["gpu__time_duration.sum"] for a in agg.values())
print(f"total {tot/1e3:.1f} us over the captured kernels")
for k, a in sorted(agg.items(), key=lambda x: -x[1]["gpu__time_duration.sum"]):
    n = max(cnt[k], 1)
    print(f"{k:62s} {a['gpu__time_duration.sum']/1e3:8.1f} us n={n:4d} avg {a['gpu__time_duration.sum']/n/1e3:6.2f} us"
          f" dram {a['dram__throughput.avg.pct_of_peak_sustained_elapsed']/n:5.1f}% occ {a['sm__warps_active.avg.pct_of_peak_sustained_active']/n:5.1f}%"
          f" regs {a['launch__registers_per_thread']/n:4.0f}")
PY
rm -f /tmp/m.gguf
done
