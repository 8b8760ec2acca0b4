"""--precision: fp32, bf16 (Keras mixed bfloat16), or auto (bf16 only where it is measured faster than fp32).

What bf16 covers: the convolutions and dense layers of G and the critics in
training, of G and E in the sampler and the exported SavedModel. What stays
float32 whatever the precision: every variable (so Adam's state, checkpoints
and the averaged G), the losses and the gradient penalty's norm (`losses` casts
to float32 first), the last layer of each network (G's deconv5, the critics'
disc_fc1, E's fc2), and the sampler's chain state h with its updates. E stays
float32 in training, as it is frozen and loaded from encoder.keras.

auto picks bf16 only on hardware where bf16 was measured faster than fp32
(`CPU_KINDS`, README's precision section): a CPU with AMX (amx_bf16 and
amx_tile), or a GPU of compute capability 8.0 or later. AVX512_BF16 alone is
native bfloat16 too, but training there ran 1.6-1.9x slower in bf16 on Intel
Xeons and no faster on AMD Zen 5, so auto picks fp32 on it; without either,
bf16 is emulated. The
choice reads only the CPU's flags, so it is the same in every run on one machine
(resumed runs and comparisons rely on that).

TensorFlow and Keras are imported inside the functions that need them: the benchmark program reads this
module before its --onednn flag decides how TensorFlow loads.
"""

from __future__ import annotations

import collections
import contextlib
import os

from absl import logging

AUTO, FP32, BF16 = "auto", "fp32", "bf16"
CHOICES = (AUTO, FP32, BF16)
POLICIES = {FP32: "float32", BF16: "mixed_bfloat16"}
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# The flags that make bf16 faster than fp32 on a CPU: AMX's tile unit with its bfloat16 multiply.
FAST_BF16_CPU_FLAGS = ("amx_bf16", "amx_tile")
CPU_AMX, CPU_AVX512_BF16, CPU_NO_BF16 = "amx", "avx512_bf16", "no_bf16"
# The kinds of CPU as `--precision=auto` tells them apart (README's precision section has the measurements).
CPU_KINDS = {
    CPU_AMX: "AMX bfloat16 tiles (amx_bf16, amx_tile): bf16 faster than fp32",
    CPU_AVX512_BF16: "AVX512_BF16 without AMX: native bfloat16 dot products, but training in bf16 no faster "
                     "than in fp32 (1.8x slower on Intel Xeons)",
    CPU_NO_BF16: "no native bfloat16: bf16 emulated, slower than fp32",
}
# oneDNN's cap on the instructions its kernels use (TensorFlow's and PyTorch's oneDNN both read it), and its older name.
ONEDNN_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# Layers that compute in float32 under any precision: each network's output feeds losses or the sampler's h.
FLOAT32_LAYERS = ("deconv5", "disc_fc1", "fc2")


def read_cpuinfo() -> str | None:
  """/proc/cpuinfo's text; None where it cannot be read (not Linux)."""
  try:
    with open("/proc/cpuinfo") as f:
      return f.read()
  except OSError:
    return None


def cpuinfo_blocks(cpuinfo_text: str) -> list[dict]:
  """/proc/cpuinfo's text as one {field: value} per block (per processor, in the order listed)."""
  blocks = []
  for block in cpuinfo_text.strip().split("\n\n"):
    fields = {}
    for line in block.splitlines():
      if ":" in line:
        key, value = line.split(":", 1)
        fields.setdefault(key.strip(), value.strip())
    blocks.append(fields)
  return blocks


def cpu_flags(cpuinfo_text: str | None = None) -> set[str]:
  """The flags of the first processor in /proc/cpuinfo (or in `cpuinfo_text`); empty when unreadable."""
  if cpuinfo_text is None:
    cpuinfo_text = read_cpuinfo()
    if cpuinfo_text is None:
      return set()
  for line in cpuinfo_text.splitlines():
    if line.startswith("flags"):
      return set(line.split(":", 1)[1].split())
  return set()


def onednn_isa_cap(environ=None) -> str | None:
  """ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) in upper case, e.g. 'AVX2'; None when unset, ALL or DEFAULT."""
  environ = os.environ if environ is None else environ
  for name in ONEDNN_ISA_VARIABLES:
    value = environ.get(name, "").strip().upper()
    if value:
      return None if value in ("ALL", "DEFAULT") else value
  return None


def usable_cpu_flags(flags, isa_cap: str | None) -> set[str]:
  """`flags` less the extensions oneDNN's kernels may not use under ONEDNN_MAX_CPU_ISA=`isa_cap`.

  oneDNN's names, oldest first: SSE41, AVX, AVX2 (and AVX2_VNNI...), AVX512_CORE, AVX512_CORE_VNNI,
  AVX512_CORE_BF16, AVX10_1_512 (AVX512_CORE_FP16), AVX512_CORE_AMX (AVX10_1_512_AMX), ...; each allows the
  ones before it. Why it matters: under a cap below AVX512_CORE_BF16 bfloat16 is emulated (or, in TensorFlow,
  fails: it still picks oneDNN's bf16 kernels from the CPU's flags), and the fp32 vectors are 8 lanes wide.
  """
  flags = set(flags)
  if isa_cap is None:
    return flags
  dropped = set()
  if "AMX" not in isa_cap:
    dropped |= {f for f in flags if f.startswith("amx")}
  if not isa_cap.startswith(("AVX512", "AVX10")):
    dropped |= {f for f in flags if f.startswith("avx512")}
  elif isa_cap in ("AVX512_CORE", "AVX512_CORE_VNNI"):
    dropped |= {"avx512_bf16", "avx512_fp16"}
  if isa_cap == "SSE41":
    dropped |= {f for f in flags if f.startswith("avx") or f == "fma"}
  return flags - dropped


def kernel_cpu_flags(cpuinfo_text: str | None = None, environ=None) -> set[str]:
  """The CPU's flags that oneDNN's kernels may use here: `cpu_flags` under ONEDNN_MAX_CPU_ISA."""
  return usable_cpu_flags(cpu_flags(cpuinfo_text), onednn_isa_cap(environ))


def cpu_model(cpuinfo_text: str | None = None) -> str | None:
  """'<model name> (family F, model M)' of the first processor: the model name alone can be generic.

  Timings compare only on one CPU model; a run's summary records it so that comparisons across runs can check.
  """
  if cpuinfo_text is None:
    cpuinfo_text = read_cpuinfo()
    if cpuinfo_text is None:
      return None
  fields = cpuinfo_blocks(cpuinfo_text)[0]
  name = fields.get("model name")
  if not name:
    return None
  return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def _visible_gpus() -> list[tuple[str, dict]]:
  """(name, device details) of each GPU TensorFlow sees."""
  import tensorflow as tf
  gpus = []
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    gpus.append((details.get("device_name", gpu.name), details))
  return gpus


def gpu_models() -> list[str]:
  """The model name of each visible GPU, one entry per device."""
  return [name for name, _ in _visible_gpus()]


def gpus_with_bf16() -> list[str]:
  """Names of the visible GPUs that compute bfloat16 natively (compute capability >= 8.0)."""
  return [name for name, details in _visible_gpus() if tuple(details.get("compute_capability", (0, 0))) >= (8, 0)]


def compute_device(cpu: str | None, gpus=()) -> str | None:
  """What a run's seconds measure: its CPU model, or with GPUs, the GPUs and their host.

  '2 × NVIDIA A100-SXM4-40GB (host: <cpu>)'. Two runs' timings compare only when this is the same.
  """
  if not gpus:
    return cpu
  counts = collections.Counter(gpus)
  return ", ".join(f"{n} × {name}" for name, n in counts.items()) + f" (host: {cpu or 'CPU not recorded'})"


def cpu_kind(flags) -> str:
  """CPU_AMX, CPU_AVX512_BF16 or CPU_NO_BF16 for a CPU with these (usable) flags."""
  flags = set(flags)
  if all(f in flags for f in FAST_BF16_CPU_FLAGS):
    return CPU_AMX
  if "avx512_bf16" in flags:
    return CPU_AVX512_BF16
  return CPU_NO_BF16


def choose(requested: str, flags: set[str], bf16_gpus=()) -> tuple[str, str]:
  """(fp32 or bf16, why) for --precision=requested on hardware with these CPU flags and bf16 GPUs."""
  if requested not in CHOICES:
    raise ValueError(f"--precision={requested}: choose from {', '.join(CHOICES)}")
  kind = cpu_kind(flags)
  if requested == FP32:
    return FP32, "--precision=fp32"
  if requested == BF16:
    if bf16_gpus or kind == CPU_AMX:
      return BF16, "--precision=bf16"
    if kind == CPU_AVX512_BF16:
      return BF16, "--precision=bf16, on AVX512_BF16 without AMX: native, but no faster than fp32 in training on such CPUs"
    return BF16, "--precision=bf16, emulated: no native bfloat16 here (slower than fp32)"
  if bf16_gpus:
    return BF16, f"auto: GPU with native bfloat16 ({', '.join(bf16_gpus)})"
  if kind == CPU_AMX:
    return BF16, "auto: the CPU has AMX bfloat16 tiles (amx_bf16, amx_tile), where bf16 runs faster than fp32"
  if kind == CPU_AVX512_BF16:
    return FP32, ("auto: the CPU has avx512_bf16 but no AMX, where training in bf16 was measured no faster than in "
                  "fp32 (1.8x slower on Intel Xeons, 0.94x the time on AMD Zen 5), so fp32")
  return FP32, "auto: no native bfloat16 (no amx_bf16 or avx512_bf16 CPU flag, no GPU of compute capability >= 8.0)"


def resolve(requested: str, program: str = "") -> str:
  """fp32 or bf16 for this machine; logs the choice and the reason in one line.

  Raises ValueError for bf16 on a CPU whose native bfloat16 ONEDNN_MAX_CPU_ISA caps away: TensorFlow would
  still run oneDNN's bf16 kernels there, and oneDNN refuses them at the first convolution.
  """
  cap, flags = onednn_isa_cap(), cpu_flags()
  usable = usable_cpu_flags(flags, cap)
  capped = set(NATIVE_BF16_CPU_FLAGS) & (flags - usable)
  if requested == BF16 and capped:
    raise ValueError(f"--precision=bf16 with ONEDNN_MAX_CPU_ISA={cap}: the cap leaves oneDNN no bfloat16 kernels, "
                     f"and TensorFlow picks them from this CPU's {', '.join(sorted(capped))}; use --precision=fp32 "
                     "(or auto), or lift the cap")
  chosen, why = choose(requested, usable, gpus_with_bf16() if requested == AUTO else ())
  if cap:
    why += f"; ONEDNN_MAX_CPU_ISA={cap}"
  logging.info("%sprecision %s (%s)", f"{program}: " if program else "", chosen, why)
  return chosen


@contextlib.contextmanager
def policy_scope(precision: str):
  """Keras' global dtype policy for `precision` while building networks; float32 again afterwards."""
  import keras
  previous = keras.mixed_precision.global_policy().name
  keras.mixed_precision.set_global_policy(POLICIES[precision])
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def in_precision(model, precision: str):
  """`model` itself in fp32 when it computes in float32, else a copy computing in `precision`.

  The copy shares nothing with `model`: it has the same layers and current weights, each layer's dtype
  policy set to `precision`'s except FLOAT32_LAYERS. Its weights are float32 either way.
  """
  import keras
  target = POLICIES[precision]
  policy_of = lambda name: "float32" if name in FLOAT32_LAYERS else target
  layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
  if all(l.dtype_policy.name == policy_of(l.name) for l in layers):
    return model

  def clone_layer(layer):
    return layer.__class__.from_config({**layer.get_config(), "dtype": policy_of(layer.name)})

  copy = keras.models.clone_model(model, clone_function=clone_layer)
  copy.set_weights(model.get_weights())
  return copy
