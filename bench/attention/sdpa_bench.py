# torch SDPA (cuDNN and FlashAttention-2 backends, fp16) on the shapes of attn_bench.cpp, timed
# with CUDA events (median of 20 after 3 warm-ups), in the same call as llm8's kernel.
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F

def time_ms(fn):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(20):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]

print("| shape | backend | ms | rate |\n| --- | --- | ---: | ---: |")
shapes = [("prefill hd128 causal 4096 x B4", 4, 32, 32, 128, 4096, 4096),
          ("prefill hd128 causal 1024 x B16", 16, 32, 32, 128, 1024, 1024),
          ("prefill hd64 causal 4096 x B4", 4, 32, 32, 64, 4096, 4096),
          ("decode GQA 32q/8kv hd128 L32768 x B16", 16, 32, 8, 128, 1, 32768),
          ("decode GQA 32q/8kv hd128 L4096 x B16", 16, 32, 8, 128, 1, 4096)]
for name, B, H, HK, D, NQ, NK in shapes:
    q = torch.randn(B, H, NQ, D, device="cuda", dtype=torch.float16)
    k = torch.randn(B, HK, NK, D, device="cuda", dtype=torch.float16)
    v = torch.randn(B, HK, NK, D, device="cuda", dtype=torch.float16)
    causal = NQ > 1
    for be, label in [(SDPBackend.CUDNN_ATTENTION, "cuDNN"), (SDPBackend.FLASH_ATTENTION, "FA2")]:
        try:
            with sdpa_kernel(be):
                ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=HK != H))
        except Exception as e:  # a backend may refuse a shape
            print(f"| {name} | {label} | - | {type(e).__name__} |")
            continue
        if causal:
            fl = 4.0 * B * H * D * NQ * NK / 2
            print(f"| {name} | {label} | {ms:.3f} | {fl / ms / 1e9:.1f} TFLOP/s |")
        else:
            by = B * 2.0 * NK * HK * D * 2
            print(f"| {name} | {label} | {ms:.3f} | {by / ms / 1e6:.0f} GB/s |")
