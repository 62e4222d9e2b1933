"""What machine this is, in the words the benchmark reports and the backend choice use."""
from __future__ import annotations

import os
import platform
import re


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The instruction-set flags that decide which low-precision paths are fast."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":")[1].split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512_vnni", "avx512f", "avx2", "avx_vnni")))


def matrix_tier(flags: list[str]) -> str:
    """The fastest matrix instructions the CPU has: what decides which low-precision path wins."""
    for flag, tier in (("amx_tile", "amx"), ("avx512_bf16", "bf16"), ("avx512_vnni", "vnni"), ("avx_vnni", "avxvnni"),
                       ("avx512f", "avx512"), ("avx2", "avx2")):
        if flag in flags:
            return tier
    return "base"


# Tiers whose INT8 dot products accumulate u8 x s8 straight into int32 (VNNI's vpdpbusd, AMX). Below
# them ONNX Runtime and oneDNN use vpmaddubsw, which adds each pair of u8 x s8 products into a
# saturating int16: 255 x 127 x 2 = 64770 > 32767, so 8-bit weights clip there (on an AVX2 Zen 3,
# ViT-B/16 INT8 label agreement fell to 72.9 %), and 7-bit weights (255 x 64 x 2 = 32640) cannot.
VNNI_TIERS = ("amx", "bf16", "vnni", "avxvnni")


def int8_weight_bits(tier: str | None = None) -> int:
    """Weight bits of an INT8 graph that computes exactly on CPUs of this tier (default: this CPU's)."""
    return 8 if (tier or matrix_tier(cpu_flags())) in VNNI_TIERS else 7


def machine_slug() -> str:
    """A folder name for results and the key of verified measurements: core count, CPU model and
    matrix tier, e.g. cpu2-intel-xeon-vnni. Cloud CPUs often share one model name ("Intel Xeon
    Processor") across generations with and without BF16 or AMX; the tier tells them apart."""
    cpu = re.sub(r"\(r\)|\(tm\)|cpu|@.*|processor", " ", cpu_model().lower())
    return f"cpu{os.cpu_count()}-" + "-".join(cpu.split())[:40].strip("-") + f"-{matrix_tier(cpu_flags())}"
