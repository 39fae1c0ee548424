"""The CPU, the instruction-set extensions that decide int8 speed, and the class of machine they make.

Every benchmark figure is printed beside :func:`isa_label`. Bars are set per :func:`isa_class`:

    x86-vnni      AVX-512 VNNI or AVX-VNNI: 8-bit dot products (vpdpbusd); int8 should beat float32 2x
    x86-avx2      AVX2 + FMA, no VNNI (e.g. AMD Zen 2/3, Intel Haswell-Skylake): int8 multiplies 16-bit pairs
    arm-dotprod   Armv8.2 dot product (asimddp; e.g. the Pi 5's Cortex-A76)
    arm-neon      Neon without dot product (e.g. the Pi 4's Cortex-A72)

:func:`emulate_avx2` makes XNNPACK in *this* process choose the kernels it would choose on an
AVX2-only CPU (see its docstring for how, and for how faithful that is).
"""

from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edge.cpuinfo import read_cpuinfo

X86_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "fphp", "sve")
CLASSES = ("x86-vnni", "x86-avx2", "x86-other", "arm-dotprod", "arm-neon", "unknown")
# Which delegate-visible kernels each class gets in XNNPACK (for the tables).
CLASS_NOTES = {
    "x86-vnni": "int8 GEMM via vpdpbusd (VNNI)",
    "x86-avx2": "int8 GEMM via vpmaddwd on 16-bit pairs (no 8-bit dot product)",
    "arm-dotprod": "int8 GEMM via sdot",
    "arm-neon": "int8 GEMM via smull/sadalp (no dot product)",
}


def cpu_facts(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model, architecture, the relevant ISA flags present, and the class they put the machine in."""
    model, flags = read_cpuinfo(cpuinfo)
    arch = platform.machine()
    wanted = X86_FLAGS if arch in ("x86_64", "AMD64", "i686") else ARM_FLAGS
    present = [f for f in wanted if f in flags]
    return {"cpu": model, "arch": arch, "isa": present, "isa_class": isa_class(arch, set(present))}


def isa_class(arch: str, flags: set[str]) -> str:
    if arch in ("x86_64", "AMD64", "i686"):
        if {"avx512_vnni", "avx_vnni"} & flags:
            return "x86-vnni"
        return "x86-avx2" if "avx2" in flags else "x86-other"
    if arch in ("aarch64", "arm64"):
        return "arm-dotprod" if "asimddp" in flags else "arm-neon"
    return "unknown"


def isa_label(facts: dict[str, Any], emulated: str | None = None) -> str:
    """One short line to print beside a figure: class, flags, CPU."""
    if emulated:
        return f"{emulated} (emulated on {facts['cpu']}: XNNPACK's ISA flags masked)"
    return f"{facts['isa_class']} [{' '.join(facts['isa']) or 'no SIMD flags found'}] on {facts['cpu']}"


# --- AVX2 emulation -------------------------------------------------------------------------------
# XNNPACK reads the CPU's features once into a static `hardware_config` (src/configs/hardware-config.c)
# and picks every microkernel from its `arch_flags` bits. Bits 0-7 are sse, sse2, ssse3, sse4.1, avx,
# f16c, fma3, avx2 (src/xnnpack/hardware-config.h); everything above is AVX-512, AVX-VNNI, AMX.
# Clearing the higher bits before the first interpreter is built makes XNNPACK choose exactly the
# kernels it chooses on an AVX2+FMA3+F16C CPU such as AMD Zen 3.
AVX2_BITS = 0xFF
AVX2_BIT, AVX512F_BIT, AVX512VNNI_BIT = 1 << 7, 1 << 9, 1 << 18
LIBRARY = "libpywrap_litert_common.so"


class EmulationUnavailable(RuntimeError):
    """The AVX2 emulation cannot be set up in this build or on this machine."""


def _symbols(library: str) -> dict[str, int]:
    if shutil.which("nm") is None:
        raise EmulationUnavailable("nm (binutils) is not installed: apt-get install binutils")
    result = subprocess.run(["nm", library], capture_output=True, text=True, check=False)
    table = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[2]] = int(parts[0], 16)
    return table


def emulate_avx2() -> dict[str, Any]:
    """Make XNNPACK in this process select AVX2-only kernels; call before building any interpreter.

    How: find LiteRT's statically linked XNNPACK in the loaded library, call its
    ``xnn_init_hardware_config()`` (which returns the static config), check that the flag word at
    the known offset matches this CPU's /proc/cpuinfo flags (so a changed layout is refused, not
    silently misread), then clear every bit above AVX2.

    Faithful: which microkernels run (the same ``__avx2``/``__fma3`` functions an AVX2-only CPU
    runs, checked with valgrind in benchmarks/ops.py), their instruction counts, and the
    int8-vs-float comparison per op. Not faithful: absolute times, which come from this core's
    pipes, caches and clock (Zen 5 executes AVX2 code faster than Zen 3).
    """
    try:
        import ai_edge_litert.interpreter  # noqa: F401  (loads the library)
    except ImportError as exc:
        raise EmulationUnavailable("ai-edge-litert is not installed in this environment") from exc

    maps = [line.split() for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(LIBRARY)]
    if not maps:
        raise EmulationUnavailable(f"{LIBRARY} is not loaded (not an ai-edge-litert build this emulation knows)")
    library = maps[0][-1]
    base = min(int(m[0].split("-")[0], 16) - int(m[2], 16) for m in maps)
    symbols = _symbols(library)
    if "xnn_init_hardware_config" not in symbols:
        raise EmulationUnavailable(f"{library} has no xnn_init_hardware_config symbol")
    init = ctypes.CFUNCTYPE(ctypes.c_void_p)(base + symbols["xnn_init_hardware_config"])
    config = init()
    if not config:
        raise EmulationUnavailable("xnn_init_hardware_config() returned NULL")
    flags = ctypes.c_uint64.from_address(config + 8)  # struct xnn_hardware_config: {uint32; uint64 arch_flags; ...}
    facts = cpu_facts()
    expected = {AVX2_BIT: "avx2" in facts["isa"], AVX512F_BIT: "avx512f" in facts["isa"],
                AVX512VNNI_BIT: "avx512_vnni" in facts["isa"]}
    if any(bool(flags.value & bit) != present for bit, present in expected.items()):
        raise EmulationUnavailable(f"XNNPACK's flag word {flags.value:#x} does not match /proc/cpuinfo: unknown layout")
    if not flags.value & AVX2_BIT:
        raise EmulationUnavailable("this CPU has no AVX2: nothing to emulate")
    before = flags.value
    flags.value = before & AVX2_BITS
    return {"arch_flags_before": hex(before), "arch_flags_after": hex(flags.value), "library": library}
