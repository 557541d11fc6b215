"""The CPU a sweep or a benchmark ran on, as the store records it and the scripts print it."""

import platform

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


def test_arm64_features_and_a_model_from_platform(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(ARM)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert environment.cpu_model(str(info)) == "aarch64"
    assert environment.cpu_vector_extensions(str(info)) == ["asimd", "sve", "sve2"]


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
