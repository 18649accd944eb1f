# The GPU's own ceilings, measured with PyTorch on the machine that runs bench-gpu, so
# ember's shaders are compared with what the same device reaches (issue #6): matmul rates
# in fp32 (TF32 off), fp16 and bf16, the fp16 GEMV of the decode shape, and the device
# copy bandwidth. Medians of 10 timed runs after warm-up, CUDA events.
import statistics
import torch


def median_seconds(run, repetitions=10):
    for _ in range(3):
        run()
    times = []
    for _ in range(repetitions):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def matmul_tflops(size, dtype):
    a = torch.randn(size, size, device="cuda", dtype=dtype)
    b = torch.randn(size, size, device="cuda", dtype=dtype)
    return 2 * size**3 / median_seconds(lambda: torch.matmul(a, b)) / 1e12


torch.backends.cuda.matmul.allow_tf32 = False
print(f"device: {torch.cuda.get_device_name()}")
for size in (4096, 8192):
    for name, dtype in (("fp32 (TF32 off)", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        print(f"matmul {size}^3 {name}: {matmul_tflops(size, dtype):.1f} TFLOP/s")
weights = torch.randn(4096, 14336, device="cuda", dtype=torch.float16)
x = torch.randn(14336, device="cuda", dtype=torch.float16)
seconds = median_seconds(lambda: torch.mv(weights, x))
print(f"fp16 GEMV 4096x14336: {weights.numel() * 2 / seconds / 1e9:.0f} GB/s of weight bytes")
source = torch.empty(1 << 30, device="cuda", dtype=torch.uint8)
target = torch.empty_like(source)
seconds = median_seconds(lambda: target.copy_(source))
print(f"device copy 1 GiB: {2 * source.numel() / seconds / 1e9:.0f} GB/s (read + write)")
