r"""The programs' flags as data, read from their absl definitions, and docs/flags.md, the reference made from them.

  python -m ppgn_tf.cli.flag_reference docs/flags.md     # rewrites the reference
  python -m ppgn_tf.cli.flag_reference                   # prints it

Each program defines its flags when it is imported, and several define the same names, so `read_flags` imports
them one after another in a fresh process and drops each one's flags once read. tests/test_docs.py keeps
docs/flags.md equal to `markdown(read_flags())` and checks every flag a document names against `read_flags()`.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

from absl import app
from absl import flags

from ppgn_tf import files

# Program name -> (its module, the commands that run it). The console scripts are pyproject.toml's
# [project.scripts]; train.py and export.py are the checkout's shims; `python -m ppgn_tf.X` runs ppgn_tf/X.py.
PROGRAMS = {
    "train": ("ppgn_tf.cli.train", ("python train.py", "ppgn-train")),
    "export": ("ppgn_tf.cli.export", ("python export.py", "ppgn-export")),
    "sample": ("ppgn_tf.cli.sample", ("python -m ppgn_tf.sample", "ppgn-sample")),
    "evaluate": ("ppgn_tf.cli.evaluate", ("python -m ppgn_tf.evaluate", "ppgn-evaluate")),
    "sweep": ("ppgn_tf.cli.sweep", ("python -m ppgn_tf.sweep", "ppgn-sweep")),
    "report": ("ppgn_tf.cli.report", ("python -m ppgn_tf.report", "ppgn-report")),
    "bench": ("ppgn_tf.cli.bench", ("python -m ppgn_tf.bench", "ppgn-bench")),
    "train_classifier": ("ppgn_tf.cli.train_classifier",
                         ("python -m ppgn_tf.cli.train_classifier", "ppgn-train-classifier")),
}
ABSL = "absl"  # The key of absl's own flags (--flagfile, --helpfull, --verbosity, ...), which every program takes.
# Handled by absl's parser itself, not defined as flags.
ABSL_SPECIAL = ("flagfile", "undefok")
# absl's flags.mark_flag_as_required registers a validator with this message.
_REQUIRED_MESSAGE = "must have a value other than None"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _describe(flag) -> dict:
  kind = flag.flag_type()
  choices = list(getattr(flag.parser, "enum_values", None) or []) or None
  help_text = " ".join(flag.help.split())
  if choices and help_text.startswith(f"<{'|'.join(choices)}>: "):  # absl prefixes an enum's help with its choices.
    help_text = help_text[len(f"<{'|'.join(choices)}>: "):]
  return {"name": flag.name, "kind": kind, "default": flag.default, "help": help_text, "choices": choices,
          "required": any(_REQUIRED_MESSAGE in getattr(v, "message", "") for v in flag.validators)}


def _read_in_this_process() -> dict:
  """{program: [flag description], ABSL: [names]}; imports every program, so only in a fresh process."""
  flag_values = flags.FLAGS
  app.define_help_flags()  # --help, --helpfull, ...: app.run defines them; with absl.logging's, every program's.
  out = {ABSL: sorted(set(flag_values) | set(ABSL_SPECIAL))}
  for program, (module, _) in PROGRAMS.items():
    before = set(flag_values)
    importlib.import_module(module)
    names = sorted(set(flag_values) - before)
    # The program's own flags; the libraries it imports (TensorFlow) define a few more, which no document needs.
    own = {flag.name for defining, defined in flag_values.flags_by_module_dict().items()
           if defining.startswith("ppgn_tf.") for flag in defined}
    out[program] = [_describe(flag_values[name]) for name in names if name in own]
    for name in names:  # The next program may define the same names.
      delattr(flag_values, name)
  return out


def read_flags() -> dict:
  """Every program's flags: {program: [{name, kind, default, help, choices, required}], ABSL: [names]}."""
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.cli.flag_reference", "--json"], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
  if result.returncode != 0:
    raise RuntimeError(f"reading the programs' flags failed: {result.stderr.strip().splitlines()[-1:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def _default_text(flag: dict) -> str:
  value = flag["default"]
  if flag["required"]:
    return "required"
  if value is None:
    return "—"
  if isinstance(value, bool):
    return f"`{str(value).lower()}`"
  if isinstance(value, list):
    return f"`{','.join(str(v) for v in value)}`" if value else "(empty)"
  return f"`{value}`" if str(value) else "(empty)"


def _cell(text: str) -> str:
  return text.replace("|", "\\|")


def markdown(flags_by_program: dict) -> str:
  """docs/flags.md: one table per program, its flags in the order of their names."""
  lines = [
      "# Flags of every program", "",
      "Generated from the programs' absl flag definitions by `python -m ppgn_tf.cli.flag_reference docs/flags.md`; "
      "`tests/test_docs.py` fails when this page and the definitions disagree. `--helpfull` prints the same for "
      "one program.", "",
      "Every program also takes absl's own flags, among them `--flagfile=FILE` (more flags from FILE, one per "
      "line; flags after it on the command line override it), `--helpfull` and `--verbosity`. A boolean flag "
      "`--x` is turned off with `--nox` or `--x=false`; a list flag takes comma-separated values.", "",
      "| program | run as |", "|---|---|",
      *[f"| [{program}](#{program}) | {', '.join(f'`{c}`' for c in commands)} |"
        for program, (_, commands) in PROGRAMS.items()], ""]
  for program, (_, commands) in PROGRAMS.items():
    lines += [f"## {program}", "", f"{', '.join(f'`{c}`' for c in commands)}", "",
              "| flag | default | what it sets |", "|---|---|---|"]
    for flag in flags_by_program[program]:
      choices = f" One of: {', '.join(flag['choices'])}." if flag["choices"] else ""
      lines.append(f"| `--{flag['name']}` | {_cell(_default_text(flag))} | {_cell(flag['help'])}{choices} |")
    lines.append("")
  return "\n".join(lines)


def main(argv) -> int:
  if argv[1:] == ["--json"]:
    print(json.dumps(_read_in_this_process()))
    return 0
  if len(argv) > 2:
    print("usage: python -m ppgn_tf.cli.flag_reference [OUTPUT.md]", file=sys.stderr)
    return 2
  text = markdown(read_flags())
  if len(argv) == 2:
    files.atomic_write(argv[1], lambda out: out.write(text.encode()))
  else:
    print(text, end="")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
