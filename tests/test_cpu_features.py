"""CPU feature detection from /proc/cpuinfo text, and the ONNX Runtime INT8 kernel path it implies.

The flag lines are shortened copies of real /proc/cpuinfo output (AMD EPYC Zen 4, Intel Haswell,
Jetson Orin's Cortex-A78AE, Jetson Nano's Cortex-A57).
"""
from __future__ import annotations

from runtime import cpu_features
from runtime.cpu_features import needs_exact_int8, parse_cpuinfo

EPYC_ZEN4 = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 9R14
flags		: fpu vme de pse sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 avx512f avx512dq avx512ifma \
avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg avx512_vpopcntdq
"""
HASWELL = """processor	: 0
model name	: Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz
flags		: fpu vme de pse sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2
"""
ALDER_LAKE = "flags : fpu sse4_2 avx avx2 fma avx_vnni\n"
ORIN = """processor	: 0
BogoMIPS	: 62.50
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat
CPU implementer	: 0x41
"""
NANO = """processor	: 0
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid
"""


def test_avx512_vnni_runs_exact_u8s8_kernels_without_the_exact_setting():
    cpu = parse_cpuinfo(EPYC_ZEN4, "x86_64")
    assert cpu.vnni and cpu.avx512 and cpu.model == "AMD EPYC 9R14"
    assert not needs_exact_int8(cpu)
    assert cpu.int8_kernel_path(exact_setting=False) == cpu_features.VNNI


def test_avx_vnni_without_avx512_counts_as_vnni():
    cpu = parse_cpuinfo(ALDER_LAKE, "x86_64")
    assert cpu.vnni and not cpu.avx512 and not needs_exact_int8(cpu)


def test_avx2_without_vnni_saturates_unless_the_exact_kernels_are_asked_for():
    cpu = parse_cpuinfo(HASWELL, "x86_64")
    assert cpu.avx2 and not cpu.vnni
    assert needs_exact_int8(cpu)
    assert cpu.int8_kernel_path(exact_setting=False) == cpu_features.X86_SATURATING
    assert cpu.int8_kernel_path(exact_setting=True) == cpu_features.X86_EXACT
    assert "saturating" in cpu.describe_int8(exact_setting=False)


def test_arm_dot_product_is_read_from_the_features_line():
    orin = parse_cpuinfo(ORIN, "aarch64")
    nano = parse_cpuinfo(NANO, "aarch64")
    assert orin.arm_dotprod and orin.int8_kernel_path(False) == cpu_features.ARM_DOT
    assert not nano.arm_dotprod and nano.int8_kernel_path(False) == cpu_features.ARM_NEON
    assert not needs_exact_int8(orin) and not needs_exact_int8(nano)   # the x86 key does nothing on ARM


def test_a_features_line_alone_means_arm_when_the_arch_is_not_given():
    assert parse_cpuinfo(ORIN).is_arm


def test_unknown_flags_are_treated_as_possibly_saturating_on_x86():
    cpu = parse_cpuinfo("", "x86_64")
    assert needs_exact_int8(cpu)                 # safe side: exact kernels cost speed, never accuracy
    assert cpu.int8_kernel_path(False) == cpu_features.UNKNOWN


def test_detect_reads_a_cpuinfo_file_and_survives_a_missing_one(tmp_path):
    (tmp_path / "cpuinfo").write_text(HASWELL)
    assert "avx2" in cpu_features.detect(tmp_path / "cpuinfo").flags
    assert cpu_features.detect(tmp_path / "absent").flags == frozenset()
