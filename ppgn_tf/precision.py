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

The hardware it reads is ppgn_tf.hardware's inventory. Keras is imported inside the functions that need it: the
benchmark program reads this module before its --onednn flag decides how TensorFlow loads.
"""

from __future__ import annotations

import contextlib

from absl import logging

from ppgn_tf import checks
from ppgn_tf import hardware

AUTO, FP32, BF16 = "auto", "fp32", "bf16"
CHOICES = (AUTO, FP32, BF16)
POLICIES = {FP32: "float32", BF16: "mixed_bfloat16"}
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
# Layers that compute in float32 under any precision: each network's output feeds losses or the sampler's h.
FLOAT32_LAYERS = ("deconv5", "disc_fc1", "fc2")


def cpu_kind(flags) -> str:
  """CPU_AMX, CPU_AVX512_BF16 or CPU_NO_BF16 for a CPU with these (usable) flags."""
  flags = set(flags)
  if all(f in flags for f in FAST_BF16_CPU_FLAGS):
    return CPU_AMX
  if "avx512_bf16" in flags:
    return CPU_AVX512_BF16
  return CPU_NO_BF16


def check_choice(requested: str) -> None:
  """--precision's rule, the one check of it: auto, fp32 or bf16 (ValueError, one line)."""
  checks.one_of("precision", requested, CHOICES)


def choose(requested: str, flags: set[str], bf16_gpus=()) -> tuple[str, str]:
  """(fp32 or bf16, why) for --precision=requested on hardware with these CPU flags and bf16 GPUs."""
  check_choice(requested)
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
  cap, flags = hardware.onednn_isa_cap(), hardware.cpu_flags()
  usable = hardware.usable_cpu_flags(flags, cap)
  capped = set(hardware.NATIVE_BF16_CPU_FLAGS) & (flags - usable)
  if requested == BF16 and capped:
    raise ValueError(f"--precision=bf16 with ONEDNN_MAX_CPU_ISA={cap}: the cap leaves oneDNN no bfloat16 kernels, "
                     f"and TensorFlow picks them from this CPU's {', '.join(sorted(capped))}; use --precision=fp32 "
                     "(or auto), or lift the cap")
  chosen, why = choose(requested, usable, hardware.gpus_with_bf16() if requested == AUTO else ())
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
