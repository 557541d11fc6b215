"""The CPU a sweep or a benchmark ran on, as the store records it and the scripts print it."""

import os
import platform

import pytest

from optimlab.bench.store import environment

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD   EPYC
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512dq

processor\t: 1
model name\t: Something Else
flags\t\t: fpu
"""

ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes sve sve2
CPU implementer\t: 0x41

processor\t: 1
Features\t: fp
"""


def test_x86_model_family_and_extensions_of_the_first_processor(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(X86)
    assert environment.cpu_model(str(info)) == "AMD EPYC (family 25, model 17)"
    assert environment.cpu_vector_extensions(str(info)) == ["sse4_2", "avx", "avx2", "fma",
                                                            "avx512f"]
    line = environment.cpu_description(str(info))
    assert line.startswith("AMD EPYC (family 25, model 17), ")
    assert line.endswith("logical CPUs, sse4_2 avx avx2 fma avx512f")


def test_arm64_features_and_a_model_from_the_implementer(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(ARM)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert environment.cpu_model(str(info)) == "ARM (implementer 0x41)"
    assert environment.cpu_vector_extensions(str(info)) == ["asimd", "sve", "sve2"]
    info.write_text(ARM.replace("CPU implementer\t: 0x41\n", ""))
    assert environment.cpu_model(str(info)) == "aarch64"  # nothing else names it


def test_no_cpuinfo_still_names_something(tmp_path, monkeypatch):
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "")
    missing = str(tmp_path / "absent")
    assert environment.cpu_model(missing) == "unknown CPU"
    assert environment.cpu_vector_extensions(missing) == []
    assert "logical CPUs" in environment.cpu_description(missing)
    assert not environment.cpu_description(missing).endswith(", ")


def test_the_store_records_the_cpu():
    env = environment.collect_environment()
    assert env["cpu_model"] and isinstance(env["cpu_extensions"], list)


def test_the_first_processors_block_alone_with_whitespace_collapsed(tmp_path):
    from optimlab._cpuinfo import first_processor

    info = tmp_path / "cpuinfo"
    info.write_text("\n" + X86)
    fields = first_processor(str(info))
    assert fields["model name"] == "AMD EPYC" and fields["cpu family"] == "25"
    assert fields["flags"].split()[-1] == "avx512dq"  # not the second processor's "fpu"
    assert first_processor(str(tmp_path / "absent")) == {}


def _arm64(implementer: str, part: str, first: str = "") -> str:
    return (f"{first}processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n"
            f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0x1\n"
            f"CPU part\t: {part}\nCPU revision\t: 1\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n")


@pytest.mark.parametrize("text, model", [
    (_arm64("0x41", "0xd0c"), "ARM Neoverse-N1 (implementer 0x41, part 0xd0c)"),
    (_arm64("0x41", "0xd40"), "ARM Neoverse-V1 (implementer 0x41, part 0xd40)"),
    (_arm64("0xc0", "0xac3"), "Ampere Ampere-1 (implementer 0xc0, part 0xac3)"),
    (_arm64("0x41", "0xfff"), "ARM (implementer 0x41, part 0xfff)"),  # unknown part: hex
    (_arm64("0x99", "0x123"), "ARM (implementer 0x99, part 0x123)"),
    # an old arm64 kernel: a "Processor" line first, the implementer and part still win
    (_arm64("0x41", "0xd03", first="Processor\t: AArch64 Processor rev 4 (aarch64)\n"),
     "ARM Cortex-A53 (implementer 0x41, part 0xd03)"),
    ("Processor\t: ARMv7 Processor rev 5 (v7l)\nprocessor\t: 0\n",
     "ARMv7 Processor rev 5 (v7l)"),
    ("processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n"
     "clock\t\t: 2200.000000MHz\n\nprocessor\t: 1\n",
     "POWER9 (architected), altivec supported"),
    ("processor\t: 0\nhart\t\t: 0\nisa\t\t: rv64imafdcv_zicsr\nmmu\t\t: sv39\n"
     "uarch\t\t: sifive,u74-mc\n", "sifive,u74-mc"),
])
def test_cpus_without_a_model_name_are_still_told_apart(tmp_path, monkeypatch, text, model):
    info = tmp_path / "cpuinfo"
    info.write_text(text)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert environment.cpu_model(str(info)) == model
    assert environment.cpu_description(str(info)).startswith(model + ", ")


def test_two_arm64_cores_are_two_models(tmp_path, monkeypatch):
    """The step-cost cache is keyed by cpu_model(): a Neoverse-N1 and a V1 must differ."""
    monkeypatch.setattr(platform, "processor", lambda: "")
    n1, v1 = tmp_path / "n1", tmp_path / "v1"
    n1.write_text(_arm64("0x41", "0xd0c"))
    v1.write_text(_arm64("0x41", "0xd40"))
    assert environment.cpu_model(str(n1)) != environment.cpu_model(str(v1))


@pytest.fixture
def cpus(tmp_path, monkeypatch):
    """Set (total, affinity, cpu.max text or None) for the CPU count checks."""
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(environment, "CGROUP_CPU_MAX", str(cpu_max), raising=False)

    def set_(total, affinity, quota=None):
        monkeypatch.setattr(os, "cpu_count", lambda: total)
        if affinity is None:
            monkeypatch.delattr(os, "sched_getaffinity", raising=False)
        else:
            monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)),
                                raising=False)
        if quota is None:
            cpu_max.unlink(missing_ok=True)
        else:
            cpu_max.write_text(quota)
    return set_


@pytest.mark.parametrize("total, affinity, quota, line, usable", [
    (2, 2, None, "2 logical CPUs, ", 2),
    (2, 1, None, "2 logical CPUs (1 usable), ", 1),  # taskset -c 0
    (8, 8, "150000 100000\n", "8 logical CPUs (2 usable), ", 2),  # a quota of 1.5: 2
    (8, 1, "400000 100000\n", "8 logical CPUs (1 usable), ", 1),  # the smaller wins
    (8, 8, "max 100000\n", "8 logical CPUs, ", 8),  # no limit
    (8, 8, "20000 100000\n", "8 logical CPUs (1 usable), ", 1),  # a fifth of one: 1
    (None, None, None, "an unknown number of logical CPUs, ", None),
    (None, 4, None, "an unknown number of logical CPUs (4 usable), ", 4),
    (4, None, None, "4 logical CPUs, ", 4),  # no affinity call (macOS, Windows)
])
def test_logical_cpus_and_those_this_process_may_use(tmp_path, cpus, total, affinity, quota,
                                                     line, usable):
    info = tmp_path / "cpuinfo"
    info.write_text(X86)
    cpus(total, affinity, quota)
    assert environment.cpu_description(str(info)) == \
        f"AMD EPYC (family 25, model 17), {line}sse4_2 avx avx2 fma avx512f"
    env = environment.collect_environment()
    assert env["cpu_count"] == total  # the stored key keeps its meaning
    assert env["cpu_usable"] == usable


def test_a_mac_is_named_by_its_chip(tmp_path, monkeypatch):
    """macOS has no /proc/cpuinfo and ``platform.processor()`` says only "arm": every Apple
    Silicon Mac shared one name, so one chip's measured step costs served another's."""
    import subprocess

    calls = []

    def sysctl(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="Apple  M2 Pro\n", stderr="")

    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    monkeypatch.setattr(subprocess, "run", sysctl)
    missing = str(tmp_path / "absent")
    assert environment.cpu_model(missing) == "Apple M2 Pro"
    assert calls == [["sysctl", "-n", "machdep.cpu.brand_string"]]
    monkeypatch.setattr(subprocess, "run", lambda argv, **kwargs: subprocess.CompletedProcess(
        argv, 1, stdout="", stderr="unknown oid"))
    assert environment.cpu_model(missing) == "arm"  # an older macOS: what it says
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(subprocess, "run", sysctl)
    assert environment.cpu_model(missing) == "arm" and len(calls) == 1  # asked on macOS only
