#!/usr/bin/env python3
"""Writes the fixtures of tests/test_quants.cpp with an independent implementation of the ggml
block formats: gguf-py (the `gguf` package on PyPI, MIT, from the llama.cpp project), whose
numpy `gguf.quants.dequantize` / `gguf.quants.quantize` are the oracle.

Usage: pip install gguf numpy && python3 tests/data/quants/gen_fixtures.py [out_dir]

For every type T it writes (all little-endian, no headers):
  T.bin        raw blocks (random bytes, with the half-precision d / dmin / m fields set to
               sane finite values so that every float is finite)
  T.f32        gguf.quants.dequantize(T.bin) as float32
and, for the types where gguf-py has a quantizer (f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0):
  T.src.f32    float32 input rows
  T.quant.bin  gguf.quants.quantize(T.src.f32)
The seed is fixed, so running it again gives the same bytes.
"""
import os
import sys
from importlib.metadata import version

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

rng = np.random.default_rng(20240611)

# name -> (type, block elements, block bytes, n blocks)
TYPES = {
    "f32": (T.F32, 1, 4, 256),
    "f16": (T.F16, 1, 2, 512),
    "bf16": (T.BF16, 1, 2, 512),
    "q4_0": (T.Q4_0, 32, 18, 8),
    "q4_1": (T.Q4_1, 32, 20, 8),
    "q5_0": (T.Q5_0, 32, 22, 8),
    "q5_1": (T.Q5_1, 32, 24, 8),
    "q8_0": (T.Q8_0, 32, 34, 8),
    "q4_K": (T.Q4_K, 256, 144, 6),
    "q5_K": (T.Q5_K, 256, 176, 6),
    "q6_K": (T.Q6_K, 256, 210, 6),
    # appended last so that the types above keep their bytes
    "q2_K": (T.Q2_K, 256, 84, 6),
    "q3_K": (T.Q3_K, 256, 110, 6),
    "iq4_nl": (T.IQ4_NL, 32, 18, 8),
    "iq4_xs": (T.IQ4_XS, 256, 136, 6),
}


def halves(n, lo=1e-3, hi=2.0, signed=True):
    """n finite half values of magnitude in [lo, hi] (log-uniform), as uint16 bit patterns."""
    mag = np.exp(rng.uniform(np.log(lo), np.log(hi), n)).astype(np.float32)
    if signed:
        mag *= rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)
    return mag.astype(np.float16).view(np.uint16)


def set_half(blocks, offset, values):
    blocks[:, offset:offset + 2] = values.astype("<u2").view(np.uint8).reshape(-1, 2)


def make_blocks(name):
    qtype, bs, ts, nb = TYPES[name]
    if name == "f32":
        vals = rng.standard_normal(nb).astype(np.float32) * np.float32(3.0)
        vals[:8] = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 1e-40, 3.4e38]
        return vals.view(np.uint8).reshape(nb, ts)
    if name in ("f16", "bf16"):
        # every bit pattern class: zeros, subnormals, normals, inf; no NaN (payloads are
        # compared bit for bit)
        bits = rng.integers(0, 1 << 16, nb, dtype=np.uint16)
        exp_mask = np.uint16(0x7C00 if name == "f16" else 0x7F80)
        bits = np.where((bits & exp_mask) == exp_mask, bits & np.uint16(0x83FF), bits)
        bits[:6] = [0x0000, 0x8000, 0x0001, 0x8001, 0x7C00 if name == "f16" else 0x7F80,
                    0xFC00 if name == "f16" else 0xFF80]
        return bits.astype("<u2").view(np.uint8).reshape(nb, ts)
    blocks = rng.integers(0, 256, (nb, ts), dtype=np.uint8)
    if name in ("q4_0", "q5_0", "q8_0"):
        set_half(blocks, 0, halves(nb))
    elif name in ("q4_1", "q5_1"):
        set_half(blocks, 0, halves(nb))
        set_half(blocks, 2, halves(nb, 1e-2, 8.0))
    elif name in ("q4_K", "q5_K"):
        set_half(blocks, 0, halves(nb, 1e-4, 0.05))  # d (one in two negative: still valid)
        set_half(blocks, 2, halves(nb, 1e-4, 0.05))  # dmin
    elif name == "q6_K":
        set_half(blocks, 208, halves(nb, 1e-4, 0.05))
    elif name == "q2_K":
        set_half(blocks, 80, halves(nb, 1e-4, 0.05))  # d
        set_half(blocks, 82, halves(nb, 1e-4, 0.05))  # dmin
    elif name == "q3_K":
        set_half(blocks, 108, halves(nb, 1e-4, 0.05))
    elif name == "iq4_nl":
        set_half(blocks, 0, halves(nb, 1e-4, 0.05))
    elif name == "iq4_xs":
        set_half(blocks, 0, halves(nb, 1e-4, 0.05))
    return blocks


def fma_trap_block(name, bs=32):
    """A block on which the quantizer's `x * id + bias` truncates differently when it is
    evaluated as one fused multiply-add (one rounding) instead of a multiply and an add (two
    roundings, as ggml's C reference is written and as numpy does it): it pins down that the
    C++ quantizer is not contracted into FMAs."""
    sym = name in ("q4_0", "q5_0")
    bits = 4 if name in ("q4_0", "q4_1") else 5
    for _ in range(1000):
        x = rng.standard_normal((4096, bs)).astype(np.float32)
        if sym:
            imax = np.abs(x).argmax(axis=-1)[:, None]
            d = np.take_along_axis(x, imax, axis=-1) / np.float32(-(1 << (bits - 1)))
            v, bias = x, np.float32((1 << (bits - 1)) + 0.5)
        else:
            mn = x.min(axis=-1, keepdims=True)
            d = (x.max(axis=-1, keepdims=True) - mn) / np.float32((1 << bits) - 1)
            v, bias = x - mn, np.float32(0.5)
        idv = (np.float32(1) / d).astype(np.float32)
        two_roundings = np.trunc(v * idv + bias)
        one_rounding = np.trunc((v.astype(np.float64) * idv + bias).astype(np.float32))
        hit = np.nonzero((two_roundings != one_rounding).any(axis=-1))[0]
        if hit.size:
            return x[hit[0]]
    raise RuntimeError("no FMA-sensitive block found")


def make_source(name):
    """Rows to quantize: normal data at several scales plus edge-case blocks."""
    if name in ("f16", "bf16"):
        v = rng.standard_normal(512).astype(np.float32) * np.float32(100.0)
        f16_edges = [0.0, -0.0, 65504.0, 65519.0, 65520.0, 1e6, -1e6, np.inf, -np.inf,
                     5.96e-8, 2.98e-8, 2.99e-8, 1e-8, 6.1e-5, 1.0 + 2.0**-11,
                     1.0 + 3 * 2.0**-11, 1.0 + 2.0**-11 + 2.0**-20, 2049.0, 2051.0, -2049.0]
        bf16_edges = [0.0, -0.0, 3.4e38, -3.4e38, np.inf, -np.inf, 1e-40, -1e-40,
                      1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-8 + 2.0**-20, 257.0,
                      259.0, -257.0, 1e-38, 3.3895314e38, 3.3895e38, 1.17549e-38, 2.0, 0.5]
        edges = f16_edges if name == "f16" else bf16_edges
        v[:len(edges)] = np.array(edges, dtype=np.float32)
        return v
    bs = 32
    blocks = [rng.standard_normal(bs) * s for s in (1.0, 0.01, 30.0, 1e-3, 5.0)]
    blocks.append(np.zeros(bs))                                   # d == 0
    blocks.append(np.full(bs, 0.75))                              # constant block
    blocks.append(-np.abs(rng.standard_normal(bs)))               # all negative
    blocks.append(np.abs(rng.standard_normal(bs)) + 2.0)          # all positive, offset
    b = rng.standard_normal(bs) * 0.1
    b[7] = -9.0                                                   # one outlier
    blocks.append(b)
    blocks.append(np.arange(bs) - 15.5)                           # an even ramp: ties
    blocks.append(rng.uniform(-1, 1, bs))
    # exact halves for Q8_0's roundf (d = 127 / 127 = 1): ties go away from zero
    ties = [127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 0.49999997, -0.49999997,
            1.4999999, 3.5, -3.5, 4.5, -4.5]
    blocks.append(np.array(ties + [float(i) - 8.0 for i in range(bs - len(ties))]))
    if name in ("q4_0", "q5_0"):  # (with "+ 0.5" of q4_1/q5_1 no such block was found)
        blocks.append(fma_trap_block(name))
    return np.concatenate(blocks).astype(np.float32)


def write(path, arr):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(arr).tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    assert sys.byteorder == "little"
    for name, (qtype, bs, ts, nb) in TYPES.items():
        blocks = make_blocks(name)
        deq = dequantize(blocks.reshape(-1), qtype).astype(np.float32).reshape(-1)
        assert deq.size == nb * bs
        assert np.all(np.isfinite(deq) | (name in ("f32", "f16", "bf16"))), name
        write(os.path.join(out, f"{name}.bin"), blocks)
        write(os.path.join(out, f"{name}.f32"), deq)
        if name in ("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"):
            src = make_source(name)
            with np.errstate(over="ignore"):  # f16 edge cases overflow to inf on purpose
                q = quantize(src.reshape(1, -1), qtype)
            write(os.path.join(out, f"{name}.src.f32"), src)
            write(os.path.join(out, f"{name}.quant.bin"), q.view(np.uint8))
    print(f"gguf {version('gguf')}, numpy {np.__version__}: fixtures written to {out}")


if __name__ == "__main__":
    main()
