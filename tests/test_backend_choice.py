"""Backend selection: a pure decision over facts, each branch checked; the probe on a real folder."""
from __future__ import annotations

import pytest

from runtime.backend_choice import Probe, choose_backend, probe
from runtime.errors import BackendUnavailable, InputError

ENGINES = frozenset({("fp16", "plugin"), ("fp16", "standard"), ("int8", "standard")})
ONNX = frozenset({("fp32", "standard"), ("fp32", "plugin"), ("fp16", "standard")})


def facts(**over) -> Probe:
    base = dict(tensorrt_importable=True, gpu=True, gpu_reason="1 CUDA device(s)", engines=ENGINES,
                onnxruntime_importable=True, onnx_pairs=ONNX, torch_importable=True, torch_model=True,
                config_path="m/config.yaml", checkpoint_path="m/model.pth")
    base.update(over)
    return Probe(**base)


def test_tensorrt_with_gpu_and_engines_wins_with_the_fastest_pair():
    choice = choose_backend(facts())
    assert (choice.backend, choice.precision, choice.flavour) == ("tensorrt", "int8", "standard")


def test_requested_precision_narrows_the_engine_pair_and_prefers_the_plugin():
    choice = choose_backend(facts(), precision="fp16")
    assert (choice.backend, choice.precision, choice.flavour) == ("tensorrt", "fp16", "plugin")


def test_without_a_gpu_onnxruntime_is_chosen_and_the_gpu_reason_is_given():
    choice = choose_backend(facts(gpu=False, gpu_reason="no usable GPU: cudaErrorInsufficientDriver"))
    assert (choice.backend, choice.precision, choice.flavour) == ("onnxruntime", "fp32", "standard")
    assert any("cudaErrorInsufficientDriver" in r for r in choice.reasons)


def test_missing_engine_pair_falls_back_to_onnxruntime():
    choice = choose_backend(facts(), precision="fp32")
    assert choice.backend == "onnxruntime"
    assert any(r.startswith("tensorrt: no engine pair for fp32") for r in choice.reasons)


def test_torch_is_the_last_resort():
    choice = choose_backend(facts(tensorrt_importable=False, onnxruntime_importable=False))
    assert choice.backend == "torch" and choice.precision is None
    assert (choice.config_path, choice.checkpoint_path) == ("m/config.yaml", "m/model.pth")


def test_explicit_backend_is_checked_not_replaced():
    with pytest.raises(BackendUnavailable, match="tensorrt: no usable GPU"):
        choose_backend(facts(gpu=False, gpu_reason="no usable GPU"), requested="tensorrt")


def test_nothing_runnable_lists_every_reason():
    with pytest.raises(BackendUnavailable) as err:
        choose_backend(facts(tensorrt_importable=False, onnx_pairs=frozenset(), torch_importable=False))
    text = str(err.value)
    assert "tensorrt:" in text and "onnxruntime: no ONNX pair" in text and "torch: PyTorch is not installed" in text


def test_unknown_backend_name_is_refused():
    with pytest.raises(InputError):
        choose_backend(facts(), requested="openvino")


def test_probe_finds_complete_pairs_only(tmp_path):
    for name in ("template.fp32.standard.onnx", "search.fp32.standard.onnx", "template.fp16.plugin.onnx",
                 "template.int8.plugin.engine", "search.int8.plugin.engine"):
        (tmp_path / name).write_bytes(b"")
    found = probe(tmp_path)
    assert found.onnx_pairs == {("fp32", "standard")}  # fp16.plugin lacks its search graph
    assert found.engines == {("int8", "plugin")}
    assert not found.torch_model


# --- the ONNX Runtime CPU INT8 placement (int8.cpu) ---------------------------------------------------
ONNX_WITH_CPU_INT8 = ONNX | {("int8", "standard"), ("int8", "cpu")}


def test_int8_on_onnxruntime_prefers_the_cpu_placement_and_names_the_kernel_path():
    choice = choose_backend(facts(gpu=False, onnx_pairs=ONNX_WITH_CPU_INT8,
                                  int8_kernels="INT8 kernel path vnni: exact and fast"), precision="int8")
    assert (choice.backend, choice.precision, choice.flavour) == ("onnxruntime", "int8", "cpu")
    assert "vnni" in choice.reasons[-1]


def test_auto_without_a_precision_keeps_fp32_even_when_cpu_int8_is_present():
    # INT8 changes the boxes; it runs only when asked for
    choice = choose_backend(facts(gpu=False, onnx_pairs=ONNX_WITH_CPU_INT8))
    assert (choice.precision, choice.flavour) == ("fp32", "standard")


def test_tensorrt_placed_int8_on_onnxruntime_says_it_is_slow_and_how_to_make_the_cpu_pair():
    choice = choose_backend(facts(gpu=False, onnx_pairs=ONNX | {("int8", "standard")}, folder="m"),
                            precision="int8")
    assert (choice.precision, choice.flavour) == ("int8", "standard")
    assert "siamtrack quantize-cpu m" in choice.reasons[-1]


def test_tensorrt_never_gets_the_cpu_flavour():
    choice = choose_backend(facts(onnx_pairs=ONNX_WITH_CPU_INT8), precision="int8")
    assert (choice.backend, choice.flavour) == ("tensorrt", "standard")


def test_probe_finds_the_cpu_int8_pair(tmp_path):
    for name in ("template.int8.cpu.onnx", "search.int8.cpu.onnx"):
        (tmp_path / name).write_bytes(b"")
    found = probe(tmp_path)
    assert ("int8", "cpu") in found.onnx_pairs and found.int8_kernels.startswith("INT8 kernel path")
