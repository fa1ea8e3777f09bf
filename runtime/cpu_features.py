"""Which INT8 instructions this CPU has, and so which ONNX Runtime INT8 kernel path runs (stdlib only).

ONNX Runtime's CPU INT8 kernels (MLAS) multiply u8 activations by s8 weights. How exact and how fast
that is depends on the instructions, not on the graph:

- x86-64 with AVX-512 VNNI, AVX-VNNI or AMX-INT8: ``VPDPBUSD`` (or AMX tiles) accumulate u8 x s8
  products straight into int32: exact and fast. The path the CPU INT8 flavour is made for.
- x86-64 with AVX2 / AVX-512BW but no VNNI: ``VPMADDUBSW`` adds pairs of u8 x s8 products into a
  saturating int16, so large activations times large weights come out wrong (not merely rounded).
  The session key ``session.x64quantprecision=1`` switches these CPUs to exact u8 x u8 kernels,
  slower; ``runtime.backends.onnxrt.session_options`` sets it only where it matters (``needs_exact_int8``).
- ARM64 with the dot-product extension (``asimddp``: SDOT/UDOT) or i8mm: exact int32 accumulation, fast.
- ARM64 without it (e.g. Cortex-A57): exact widening NEON multiplies, slow.

Detection reads the ``flags`` (x86) or ``Features`` (ARM) line of /proc/cpuinfo. Elsewhere (macOS,
Windows) the features are unknown and the INT8 path is described as such.
"""
from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

# Kernel paths, as named in descriptions and in `siamtrack latency` output.
VNNI = "vnni"                 # x86 u8 x s8 with int32 accumulation (AVX-512 VNNI, AVX-VNNI, AMX)
X86_SATURATING = "u8s8-saturating"   # x86 AVX2/AVX-512BW without VNNI, ORT's default kernels
X86_EXACT = "u8u8-exact"      # the same CPUs with session.x64quantprecision=1
ARM_DOT = "arm-dotprod"
ARM_NEON = "arm-neon"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class CpuFeatures:
    """The INT8-relevant facts of one CPU. arch: "x86_64", "aarch64" or what ``platform.machine`` says;
    flags: the lower-case flag words as listed by the kernel (empty when unknown)."""

    arch: str
    model: str
    flags: frozenset[str]

    @property
    def is_x86(self) -> bool:
        return self.arch in ("x86_64", "amd64", "i686", "i386")

    @property
    def is_arm(self) -> bool:
        return self.arch in ("aarch64", "arm64") or self.arch.startswith("arm")

    @property
    def vnni(self) -> bool:
        """u8 x s8 dot products into int32 on x86 (AVX-512 VNNI, AVX-VNNI, or AMX-INT8)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags and "avx512bw" in self.flags

    @property
    def arm_dotprod(self) -> bool:
        return bool(self.flags & {"asimddp", "i8mm"})

    def int8_kernel_path(self, exact_setting: bool) -> str:
        """Which INT8 kernel family ONNX Runtime runs here; ``exact_setting``: whether the session
        sets ``session.x64quantprecision=1`` (it only changes x86 CPUs without VNNI)."""
        if self.is_x86:
            if self.vnni:
                return VNNI
            if not self.flags:
                return UNKNOWN
            return X86_EXACT if exact_setting else X86_SATURATING
        if self.is_arm:
            if not self.flags:
                return UNKNOWN
            return ARM_DOT if self.arm_dotprod else ARM_NEON
        return UNKNOWN

    def describe_int8(self, exact_setting: bool) -> str:
        """One line for humans: the kernel path and what it means for the INT8 graphs."""
        path = self.int8_kernel_path(exact_setting)
        text = {
            VNNI: "u8 x s8 with int32 accumulation (VNNI): exact and fast",
            X86_EXACT: "exact u8 x u8 kernels (no VNNI on this CPU): correct, but INT8 gains little over FP32",
            X86_SATURATING: "u8 x s8 with saturating int16 sums (AVX2, no VNNI): large products come out wrong",
            ARM_DOT: "int8 dot products (SDOT/UDOT) with int32 accumulation: exact and fast",
            ARM_NEON: "widening NEON multiplies (no dot-product extension): exact, slow",
            UNKNOWN: "unknown CPU features (no /proc/cpuinfo flags): INT8 exactness and speed not known",
        }[path]
        return f"INT8 kernel path {path}: {text}"


def needs_exact_int8(features: CpuFeatures) -> bool:
    """True where ORT's default INT8 kernels saturate (x86 without VNNI, or x86 of unknown flags):
    there the session must ask for the exact ones. On VNNI and ARM the setting changes nothing."""
    return features.is_x86 and not features.vnni


def parse_cpuinfo(text: str, arch: str | None = None) -> CpuFeatures:
    """Features from the text of /proc/cpuinfo (first processor's ``flags`` or ``Features`` line).
    ``arch`` defaults to this machine's; a ``Features`` line without ``flags`` means ARM."""
    flags: frozenset[str] = frozenset()
    model = ""
    seen_arm = False
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "flags" and not flags:
            flags = frozenset(value.lower().split())
        elif key == "features" and not flags:
            flags, seen_arm = frozenset(value.lower().split()), True
        elif key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
    if arch is None:
        arch = "aarch64" if seen_arm else (platform.machine().lower() or "unknown")
    return CpuFeatures(arch=arch.lower(), model=model, flags=flags)


@functools.lru_cache(maxsize=4)
def detect(cpuinfo: Path = CPUINFO) -> CpuFeatures:
    """This machine's features (read once per process); flags empty when /proc/cpuinfo cannot be read
    (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, arch=platform.machine().lower() or "unknown")
