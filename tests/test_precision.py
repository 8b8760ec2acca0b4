"""--precision: auto's choice from CPU flags, a bf16 training step, checkpoints across precisions, bf16 export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf import hardware
from ppgn_tf import precision
from ppgn_tf.training import critic_schedule
from ppgn_tf.data import datasets as data
from ppgn_tf.training import ppgn
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import serving
from ppgn_tf.sampling import trained_run
from ppgn_tf.sampling.mala_sampler import SamplerConfig

from conftest import REPO
from tiny_networks import tiny_encoder

AVX2_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
"""
AVX512_CPUINFO = AVX2_CPUINFO.replace("avx2 bmi2", "avx2 bmi2 avx512f avx512bw avx512_vnni")
SAPPHIRE_RAPIDS_CPUINFO = AVX512_CPUINFO.replace("avx512_vnni", "avx512_vnni avx512_bf16 amx_bf16 amx_tile")
COOPER_LAKE_CPUINFO = AVX512_CPUINFO.replace("avx512_vnni", "avx512_vnni avx512_bf16")
AMX_WITHOUT_TILE_CPUINFO = AVX512_CPUINFO.replace("avx512_vnni", "avx512_vnni avx512_bf16 amx_bf16")


@pytest.mark.parametrize("cpuinfo, requested, expected", [
    (AVX2_CPUINFO, "auto", "fp32"),
    (AVX512_CPUINFO, "auto", "fp32"),  # AVX-512 alone has no bfloat16 arithmetic.
    (SAPPHIRE_RAPIDS_CPUINFO, "auto", "bf16"),
    (COOPER_LAKE_CPUINFO, "auto", "fp32"),  # avx512_bf16 without AMX: native, but slower than fp32.
    (AMX_WITHOUT_TILE_CPUINFO, "auto", "fp32"),  # AMX's bf16 multiply is nothing without its tiles.
    (SAPPHIRE_RAPIDS_CPUINFO, "fp32", "fp32"),
    (AVX2_CPUINFO, "bf16", "bf16"),
    ("", "auto", "fp32"),  # Unreadable flags: the safe choice.
])
def test_auto_picks_bf16_only_where_it_is_faster(cpuinfo, requested, expected):
  chosen, why = precision.choose(requested, hardware.cpu_flags(cpuinfo))
  assert chosen == expected
  if requested == "auto":
    assert why.startswith("auto: ")
    assert ("runs faster than fp32" in why) == (expected == "bf16")


@pytest.mark.parametrize("cpuinfo, kind, says", [
    (SAPPHIRE_RAPIDS_CPUINFO, "amx", "AMX bfloat16 tiles"),
    (COOPER_LAKE_CPUINFO, "avx512_bf16", "avx512_bf16 but no AMX, where training in bf16 was measured no faster"),
    (AVX2_CPUINFO, "no_bf16", "no native bfloat16"),
])
def test_the_three_kinds_of_cpu_and_why_auto_chose(monkeypatch, cpuinfo, kind, says):
  """resolve() reads faked CPU flags: the log line names the kind, the choice follows it."""
  monkeypatch.setattr(hardware, "read_cpuinfo", lambda: cpuinfo)
  monkeypatch.setattr(hardware, "gpus_with_bf16", lambda: [])
  monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
  monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
  logged = []
  monkeypatch.setattr(precision.logging, "info", lambda fmt, *args: logged.append(fmt % args))
  assert precision.cpu_kind(hardware.cpu_flags(cpuinfo)) == kind and kind in precision.CPU_KINDS
  assert precision.resolve("auto", "train") == ("bf16" if kind == "amx" else "fp32")
  assert len(logged) == 1 and logged[0].startswith("train: precision ") and says in logged[0]
  assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"  # Explicit wins.


def test_explicit_bf16_without_hardware_says_emulated_and_a_bf16_gpu_wins():
  assert "emulated" in precision.choose("bf16", hardware.cpu_flags(AVX2_CPUINFO))[1]
  assert "emulated" not in precision.choose("bf16", hardware.cpu_flags(COOPER_LAKE_CPUINFO))[1]
  assert "no faster than fp32" in precision.choose("bf16", hardware.cpu_flags(COOPER_LAKE_CPUINFO))[1]
  chosen, why = precision.choose("auto", hardware.cpu_flags(AVX2_CPUINFO), bf16_gpus=["NVIDIA A100"])
  assert chosen == "bf16" and "A100" in why
  with pytest.raises(ValueError, match="--precision=fp16"):
    precision.choose("fp16", set())


@pytest.mark.parametrize("cap, native, lanes_512", [
    (None, {"amx_bf16", "avx512_bf16"}, True), ("ALL", {"amx_bf16", "avx512_bf16"}, True),
    ("AVX512_CORE_AMX", {"amx_bf16", "avx512_bf16"}, True), ("AVX10_1_512", {"avx512_bf16"}, True),
    ("AVX512_CORE_BF16", {"avx512_bf16"}, True), ("AVX512_CORE", set(), True),
    ("AVX2", set(), False), ("avx2_vnni", set(), False),
])
def test_onednn_isa_cap_removes_the_extensions_above_it(cap, native, lanes_512):
  environ = {} if cap is None else {"ONEDNN_MAX_CPU_ISA": cap}
  flags = hardware.kernel_cpu_flags(SAPPHIRE_RAPIDS_CPUINFO, environ)
  assert flags & set(hardware.NATIVE_BF16_CPU_FLAGS) == native
  assert ("avx512f" in flags) == lanes_512 and "avx2" in flags
  assert precision.choose("auto", flags)[0] == ("bf16" if "amx_bf16" in native else "fp32")
  assert hardware.onednn_isa_cap({"DNNL_MAX_CPU_ISA": "avx2"}) == "AVX2"  # oneDNN's older name.


def test_bf16_under_a_cap_that_removes_it_is_refused_and_auto_picks_fp32(monkeypatch):
  """TensorFlow picks oneDNN's bf16 kernels from the CPU's flags, and the cap makes oneDNN refuse them."""
  monkeypatch.setattr(hardware, "read_cpuinfo", lambda: SAPPHIRE_RAPIDS_CPUINFO)
  monkeypatch.setattr(hardware, "gpus_with_bf16", lambda: [])
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
  with pytest.raises(ValueError, match="--precision=bf16 with ONEDNN_MAX_CPU_ISA=AVX2: .*amx_bf16, avx512_bf16"):
    precision.resolve("bf16", "train")
  assert precision.resolve("auto", "train") == "fp32" and precision.resolve("fp32") == "fp32"
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
  assert precision.resolve("bf16") == "bf16" == precision.resolve("auto")


def test_cpu_flags_read_this_machine():
  flags = hardware.cpu_flags()
  if os.path.isfile("/proc/cpuinfo"):
    assert "fpu" in flags or "fp" in flags or "neon" in flags or "sse2" in flags  # x86 or arm.


def test_cpu_model_names_family_and_model():
  text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\ncpu family\t: 6\nmodel\t\t: 207\n\n" \
         "processor\t: 1\nmodel name\t: Other\n"
  assert hardware.cpu_model(text) == "Intel(R) Xeon(R) Processor (family 6, model 207)"
  assert hardware.cpu_model("flags\t: sse2\n") is None
  if os.path.isfile("/proc/cpuinfo") and "model name" in open("/proc/cpuinfo").read():
    assert hardware.cpu_model().startswith(open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip())


def test_gpus_are_named_and_a_run_on_gpus_is_told_from_a_cpu_run(monkeypatch):
  """summary.json names the GPUs (none here); timings pair only runs on one CPU model and the same GPUs."""
  if not tf.config.list_physical_devices("GPU"):
    assert hardware.gpu_models() == []
  gpus = {"/GPU:0": {"device_name": "NVIDIA A100-SXM4-40GB", "compute_capability": (8, 0)},
          "/GPU:1": {"device_name": "NVIDIA A100-SXM4-40GB", "compute_capability": (8, 0)},
          "/GPU:2": {"device_name": "Tesla V100-SXM2-16GB", "compute_capability": (7, 0)}}
  devices = [types.SimpleNamespace(name=name, device_type="GPU") for name in gpus]
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: devices if kind == "GPU" else [])
  monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: gpus[device.name])
  assert hardware.gpu_models() == ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", "Tesla V100-SXM2-16GB"]
  assert hardware.gpus_with_bf16() == ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"]
  cpu = "Intel(R) Xeon(R) Processor (family 6, model 207)"
  assert hardware.compute_device(cpu, hardware.gpu_models()) == \
      f"2 × NVIDIA A100-SXM4-40GB, 1 × Tesla V100-SXM2-16GB (host: {cpu})"
  assert hardware.compute_device(cpu, ()) == cpu and hardware.compute_device(None, ()) is None
  assert hardware.compute_device(None, ["T4"]) == "1 × T4 (host: CPU not recorded)"


def _tiny_model(encoder, precision_name):
  config = ppgn.PPGNConfig(dim=2, batch_size=8, latent_critics=("fc1",),
                           schedule=critic_schedule.CriticSchedule(2, 2, 1, 1000))
  with precision.policy_scope(precision_name):
    return ppgn.compile_as_configured(ppgn.PPGN(encoder, config))


def test_bf16_training_steps_keep_float32_variables_and_finite_losses(small_idx_dir, tmp_path):
  encoder = tiny_encoder()
  model = _tiny_model(encoder, "bf16")
  import keras
  assert keras.mixed_precision.global_policy().name == "float32"  # The scope restored it.
  assert model.generator.get_layer("deconv2").compute_dtype == "bfloat16"
  assert model.critics["image"].get_layer("conv1").compute_dtype == "bfloat16"
  assert model.generator.get_layer("deconv5").compute_dtype == "float32"
  train, _ = data.load_arrays(f"idx:{small_idx_dir}")
  batches = iter(data.make_pipeline(train, 8, seed=0, repeat=True))
  step = tf.function(model.train_step)
  for _ in range(4):  # Two G steps.
    logs = step(next(batches))
  assert int(logs["g_steps"]) == 2
  for key, value in logs.items():
    assert np.isfinite(float(value)), key
  assert float(logs["gp_image"]) > 0 and float(logs["l_x"]) > 0
  variables = (model.generator.weights + model.critics["image"].weights + model.critics["fc1"].weights +
               model.generator_optimizer.variables + model.critic_optimizers["image"].variables)
  assert {v.dtype for v in variables} <= {"float32", "int64"}
  assert any(v.dtype == "float32" and "momentum" in v.path for v in model.generator_optimizer.variables)

  # The same checkpoint restores into an fp32 model: bf16 training leaves float32 variables only.
  path = tf.train.Checkpoint(**model.checkpoint_items()).write(str(tmp_path / "ckpt"))
  fp32 = _tiny_model(encoder, "fp32")
  assert fp32.generator.get_layer("deconv2").compute_dtype == "float32"
  tf.train.Checkpoint(**fp32.checkpoint_items()).read(path).assert_existing_objects_matched()
  for a, b in zip(model.generator.weights + model.critics["image"].weights,
                  fp32.generator.weights + fp32.critics["image"].weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  assert int(fp32.generator_steps.numpy()) == 2


def test_in_precision_copies_weights_and_keeps_outputs_float32():
  from ppgn_tf.model.generator import build_generator
  generator = build_generator((64,), 4)
  assert precision.in_precision(generator, "fp32") is generator
  bf16 = precision.in_precision(generator, "bf16")
  assert bf16.get_layer("deconv3").compute_dtype == "bfloat16" and bf16.get_layer("deconv5").dtype == "float32"
  for a, b in zip(generator.weights, bf16.weights):
    assert b.dtype == "float32"
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  codes = tf.random.stateless_normal([3, 64], seed=[0, 1])
  expected, got = generator(codes).numpy(), bf16(codes)
  assert got.dtype == tf.float32
  # bfloat16 keeps 8 bits of mantissa: close to fp32, not equal to it.
  scale = np.abs(expected).max()
  assert 0 < np.abs(got.numpy() - expected).max() < 0.05 * scale


def test_a_bf16_export_serves_float32_with_or_without_onednn(trained_workdir, tmp_path):
  """Exported in bf16, the SavedModel's signatures take and return float32 of the usual shapes; it also
  runs on TensorFlow's Eigen kernels (oneDNN off), as on a CPU without bfloat16 or oneDNN."""
  model = trained_run.load_trained(trained_workdir)
  archive = serving.build_archive(model.generator, model.encoder, SamplerConfig(steps=2), "fc1",
                                  trained_run.load_code_prior(trained_workdir, model), precision="bf16")
  path = serving.write(archive, str(tmp_path / "export"))
  assert export_layout.read_export_precision(path) == "bf16"
  script = f"""
import json, numpy as np, tensorflow as tf
s = tf.saved_model.load({path!r}).signatures
out = s["serving_default"](class_id=tf.constant([3, 7], tf.int32), seed=tf.constant([1, 2], tf.int64))
gen = s["generate"](codes=tf.zeros([2, 64]))
enc = s["encode"](images=tf.fill([2, 28, 28, 1], 0.5))
print(json.dumps({{k: [v.dtype.name, v.shape.as_list(), bool(np.isfinite(v.numpy()).all())]
                  for k, v in {{**out, "generated": gen["images"], **{{"enc_" + k: v for k, v in enc.items()}}}}.items()}}))
"""
  for onednn in ("1", "0"):
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs == {
        "images": ["float32", [2, 28, 28, 1], True], "codes": ["float32", [2, 64], True],
        "class_probs": ["float32", [2, 10], True], "generated": ["float32", [2, 28, 28, 1], True],
        "enc_codes": ["float32", [2, 64], True], "enc_class_probs": ["float32", [2, 10], True]}, onednn


def test_sample_refuses_precision_for_a_saved_model(tmp_path):
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.sample", f"--saved_model={tmp_path}", "--precision=bf16"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
  assert result.returncode == 1
  assert "sample: error: --precision applies to --workdir only" in result.stderr
