#!/usr/bin/env python3
"""Writes the tiny malformed GGUF files used by the CLI tests (tests/cli/cli.cmake): one file
per class of bad input, each a few hundred bytes, written by hand from the GGUF v3 layout
(magic, version, tensor count, metadata count, key/value pairs, tensor infos, padding to 32,
data). Run it in this folder; the outputs are committed."""
import struct

GGUF_STRING, GGUF_ARRAY, GGUF_U32 = 8, 9, 4
F32 = 0


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv_str(key, val):
    return s(key) + struct.pack("<I", GGUF_STRING) + s(val)


def kv_u32(key, val):
    return s(key) + struct.pack("<II", GGUF_U32, val)


def tensor_info(name, dims, ttype, offset):
    out = s(name) + struct.pack("<I", len(dims))
    for d in dims:
        out += struct.pack("<Q", d)
    return out + struct.pack("<IQ", ttype, offset)


def gguf(kvs, infos, data, version=3, magic=b"GGUF", n_tensors=None, n_kv=None):
    head = magic + struct.pack("<I", version)
    head += struct.pack("<QQ", len(infos) if n_tensors is None else n_tensors,
                        len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    body += b"\0" * (-len(body) % 32)
    return body + data


KVS = [kv_str("general.architecture", "llama"), kv_str("general.name", "bad")]
# Two f32 tensors of 8 elements (32 bytes each) at offsets 0 and 32.
GOOD_INFOS = [tensor_info("a.weight", [8], F32, 0), tensor_info("b.weight", [8], F32, 32)]
DATA = bytes(64)

files = {
    "truncated.gguf": gguf(KVS, GOOD_INFOS, DATA)[:60],
    "wrong_magic.gguf": gguf(KVS, GOOD_INFOS, DATA, magic=b"GGML"),
    "bad_version.gguf": gguf(KVS, GOOD_INFOS, DATA, version=99),
    "huge_tensor_count.gguf": gguf(KVS, GOOD_INFOS, DATA, n_tensors=1 << 62),
    "huge_metadata_count.gguf": gguf(KVS, GOOD_INFOS, DATA, n_kv=1 << 62),
    "huge_string_length.gguf": gguf(
        [struct.pack("<Q", 1 << 63) + b"general.architecture"], [], b""),
    "huge_array_length.gguf": gguf(
        KVS + [s("tokenizer.ggml.tokens") + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, 1 << 60)],
        [], b""),
    "bad_metadata_type.gguf": gguf(KVS + [s("x.y") + struct.pack("<II", 99, 0)], [], b""),
    "bad_tensor_type.gguf": gguf(KVS, [tensor_info("a.weight", [8], 77, 0)], DATA),
    "huge_dimension.gguf": gguf(KVS, [tensor_info("a.weight", [1 << 40, 1 << 40], F32, 0)], DATA),
    "offset_past_end.gguf": gguf(KVS, [tensor_info("a.weight", [8], F32, 4096)], DATA),
    "misaligned_offset.gguf": gguf(KVS, [tensor_info("a.weight", [8], F32, 4)], DATA),
    "overlapping_tensors.gguf": gguf(
        KVS, [tensor_info("a.weight", [16], F32, 0), tensor_info("b.weight", [8], F32, 32)], DATA),
}
for name, b in files.items():
    with open(name, "wb") as f:
        f.write(b)
