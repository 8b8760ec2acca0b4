"""The machine a run measures: the CPU (model, flags, oneDNN's instruction cap) and the GPUs. The precision policy
(ppgn_tf.precision) and the benchmark read it; run summaries record it, since timings compare only on one model.

TensorFlow is imported inside the GPU functions: the benchmark program reads the CPU before --onednn decides how
TensorFlow loads.
"""

from __future__ import annotations

import collections
import os

# oneDNN's cap on the instructions its kernels use (TensorFlow's and PyTorch's oneDNN both read it), and its older name.
ONEDNN_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # The CPU flags of native bfloat16 arithmetic.


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
