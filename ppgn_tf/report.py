r"""A markdown report across training runs: metrics, sample grids (Fig. 3), Wasserstein curves (Fig. 4).

  python -m ppgn_tf.report runs/repro/3a_vanilla runs/repro/3e_combined --output=docs/reproduction.md
  python -m ppgn_tf.report runs/repro/3* --evaluate --eval_classifier_dir=runs/repro/eval_classifier

Each WORKDIR needs summary.json (a finished run) and evaluation.json (from
ppgn_tf.evaluate; --evaluate runs it where missing). Pictures are copied, not
linked, into an images directory beside the markdown, so the report stands alone.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from absl import app
from absl import flags
from absl import logging

from ppgn_tf import evaluate as evaluate_lib
from ppgn_tf import files
from ppgn_tf import sample as sample_lib

GRID_COLUMNS = 3  # Pictures per row of the side-by-side tables.


def _read_json(path: str) -> dict | None:
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def run_names(workdirs: list[str]) -> list[str]:
  """Basenames, or parent/basename where basenames repeat."""
  base = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  return [b if base.count(b) == 1 else os.path.join(os.path.basename(os.path.dirname(os.path.normpath(w))), b)
          for w, b in zip(workdirs, base)]


def check_workdirs(workdirs: list[str], evaluate_missing: bool) -> None:
  """Cheap checks before any work; raises ValueError with one line."""
  if not workdirs:
    raise ValueError("give at least one WORKDIR")
  for w in workdirs:
    if not os.path.isdir(w):
      raise ValueError(f"{w}: no such workdir")
    if not os.path.isfile(os.path.join(w, "summary.json")):
      raise ValueError(f"{w}/summary.json: missing (not a finished run)")
    if not evaluate_missing and not os.path.isfile(os.path.join(w, evaluate_lib.EVALUATION_FILE)):
      raise ValueError(f"{w}/{evaluate_lib.EVALUATION_FILE}: missing (run python -m ppgn_tf.evaluate "
                       f"--workdir={w}, or pass --evaluate)")


def format_seconds(seconds: float | None) -> str:
  if seconds is None:
    return "-"
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds} s"
  if seconds < 3600:
    return f"{seconds // 60} min {seconds % 60} s"
  return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _num(value, digits: int = 3) -> str:
  return "-" if value is None else f"{value:.{digits}f}"


def _copy(source: str, destination: str) -> None:
  with open(source, "rb") as f:
    content = f.read()
  files.atomic_write(destination, lambda out: out.write(content))


def _picture_table(names: list[str], links: list[str | None]) -> list[str]:
  """Markdown tables of pictures, GRID_COLUMNS per row, names as headers."""
  lines = []
  for lo in range(0, len(names), GRID_COLUMNS):
    chunk = list(zip(names[lo:lo + GRID_COLUMNS], links[lo:lo + GRID_COLUMNS]))
    lines += ["| " + " | ".join(n for n, _ in chunk) + " |", "|" + " --- |" * len(chunk),
              "| " + " | ".join(f"![{n}]({l})" if l else "(none)" for n, l in chunk) + " |", ""]
  return lines


def build_report(workdirs: list[str], output: str, title: str = "PPGN runs", images_dir: str | None = None,
                 command: str | None = None, notes: str | None = None) -> str:
  """Writes the markdown (atomically) and the copied pictures; returns the markdown.

  `notes`: markdown placed after the title (the reader's conclusions; numbers below it are generated).
  """
  check_workdirs(workdirs, evaluate_missing=False)
  out_dir = os.path.dirname(os.path.abspath(output))
  images_dir = images_dir or os.path.join(out_dir, os.path.splitext(os.path.basename(output))[0] + "_images")
  os.makedirs(images_dir, exist_ok=True)
  names = run_names(workdirs)
  runs = []
  for w, name in zip(workdirs, names):
    evaluation = _read_json(os.path.join(w, evaluate_lib.EVALUATION_FILE))
    grids = [os.path.join(w, "samples", "samples.png"), os.path.join(w, evaluation.get("samples_png") or "")]
    pictures = {}
    for kind, candidates in (("samples", grids), ("wasserstein", [os.path.join(w, "wasserstein.png")])):
      found = next((p for p in candidates if os.path.isfile(p)), None)
      if found:
        target = os.path.join(images_dir, f"{name.replace(os.sep, '_')}_{kind}.png")
        _copy(found, target)
        pictures[kind] = os.path.relpath(target, out_dir).replace(os.sep, "/")
        pictures[f"{kind}_is_fallback"] = found != candidates[0]
    runs.append({"name": name, "summary": _read_json(os.path.join(w, "summary.json")), "evaluation": evaluation,
                 "options": _read_json(os.path.join(w, "options.json")) or {}, "pictures": pictures})

  lines = [f"# {title}", ""]
  if command:
    lines += [f"Written by `{command}`.", ""]
  if notes:
    lines += [notes.strip(), ""]
  lines += ["## Metrics", "",
            "Judged by an evaluation classifier independent of E (`ppgn_tf/eval_classifier.py`). Accuracy: share "
            "of samples labelled as the requested class; mean p: its mean probability of that class; FD: Fréchet "
            "distance of its features, samples vs real test images (floor: real vs real, as many images); "
            "diversity: mean pairwise L2 distance within a class, pixels in [0, 1] (real test images in "
            "brackets); recon MSE: G(E(x)) vs x on test images, pixels in [0, 1]; G(E(x)) columns: the same "
            "metrics of those reconstructions, judged against the true labels: G's ceiling, the best a sampler "
            "can reach with this G (\"-\": not measured by the evaluation).", "",
            "| run | critics | accuracy | mean p | FD (floor) | diversity (real) | recon MSE | G(E(x)) accuracy "
            "| G(E(x)) FD | G(E(x)) diversity | G steps | critic steps | wall time |",
            "|" + " --- |" * 13]
  for r in runs:
    e, s = r["evaluation"], r["summary"]
    recon = e.get("reconstructions") or {}  # Absent from evaluations written before it was measured.
    lines.append(
        f"| {r['name']} | {', '.join(s.get('critics', []))} | {_num(e['accuracy'])} "
        f"| {_num(e['mean_requested_probability'])} "
        f"| {_num(e['frechet_distance'], 2)} ({_num(e['frechet_real_floor'], 2)}) "
        f"| {_num(e['diversity'])} ({_num(e['real_diversity'])}) | {_num(e['reconstruction_mse'], 4)} "
        f"| {_num(recon.get('accuracy'))} | {_num(recon.get('frechet_distance'), 2)} "
        f"| {_num(recon.get('diversity'))} "
        f"| {s.get('generator_steps', '-')} | {s.get('critic_steps', '-')} | {format_seconds(s.get('wall_seconds'))} |")
  settings = sorted({(e["per_class"], e["sampler"]["steps"], e["dataset"], e["eval_classifier"]["test_accuracy"])
                     for e in (r["evaluation"] for r in runs)}, key=str)
  lines.append("")
  for per_class, steps, dataset, clf_accuracy in settings:
    lines.append(f"Evaluated with {per_class} samples per class, {steps} MALA steps, on {dataset}; the evaluation "
                 f"classifier's held-out accuracy {clf_accuracy:.4f}.")
  if len(settings) > 1:
    lines.append("**The runs were evaluated with different settings: compare with care.**")

  lines += ["", "### Accuracy per class", "",
            "Samples by requested class; below each run, where measured, G(E(x)) of the test images by true class.",
            "", "| run | " + " | ".join(str(c) for c in range(10)) + " |", "|" + " --- |" * 11]

  def accuracy_row(name, table):
    return f"| {name} | " + " | ".join(_num(row["accuracy"], 2) for row in table) + " |"

  for r in runs:
    lines.append(accuracy_row(r["name"], r["evaluation"]["per_class_table"]))
    recon_table = (r["evaluation"].get("reconstructions") or {}).get("per_class_table")
    if recon_table:  # Absent from evaluations written before it was measured.
      lines.append(accuracy_row(f"{r['name']} G(E(x))", recon_table))
  lines += ["", "## Samples (Fig. 3)", "",
            "One row per class: each run's `samples/samples.png` (written at the end of training), or, for a run "
            "without one, the grid `ppgn_tf.evaluate` wrote (marked \"evaluation grid\").", ""]
  headers = [n + (" (evaluation grid)" if r["pictures"].get("samples_is_fallback") else "") for n, r in zip(names, runs)]
  lines += _picture_table(headers, [r["pictures"].get("samples") for r in runs])
  lines += ["## Wasserstein estimates (Fig. 4)", ""]
  lines += _picture_table(names, [r["pictures"].get("wasserstein") for r in runs])
  lines += ["## Commands", ""]
  for r in runs:
    lines += [f"### {r['name']}", "", "```bash", r["options"].get("command") or "# (training command not recorded)"]
    if r["evaluation"].get("command"):
      lines.append(r["evaluation"]["command"])
    lines += ["```", ""]
  markdown = "\n".join(lines)
  files.atomic_write(output, lambda out: out.write(markdown.encode()))
  return markdown


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags; defined only when run as a program."""
  flags.DEFINE_string("output", "docs/reproduction.md", "The markdown written.")
  flags.DEFINE_string("title", "PPGN runs", "Its title.")
  flags.DEFINE_string("notes", None, "A markdown file placed after the title (conclusions drawn from the numbers).")
  flags.DEFINE_string("images_dir", None, "Where pictures are copied (default: OUTPUT_STEM_images beside it).")
  flags.DEFINE_bool("evaluate", False, "Run ppgn_tf.evaluate for workdirs without evaluation.json.")
  flags.DEFINE_integer("per_class", 100, "With --evaluate: chains per class.")
  flags.DEFINE_integer("batch", 200, "With --evaluate: chains per sampler call.")
  flags.DEFINE_string("eval_classifier_dir", None, "With --evaluate: a shared evaluation classifier directory "
                      "(default: each workdir's own).")
  sample_lib.define_sampler_flags("With --evaluate: MALA steps per chain.")


def _evaluate_command(workdir: str, config) -> str:
  """The ppgn_tf.evaluate command equivalent to what --evaluate runs, for the record."""
  args = [f"--workdir={workdir}", f"--per_class={FLAGS.per_class}", f"--sampler_preset={FLAGS.sampler_preset}"]
  args += [f"--{name}={value}" for name, value in sample_lib.sampler_overrides_from_flags().items()]
  if FLAGS.eval_classifier_dir:
    args.append(f"--eval_classifier_dir={FLAGS.eval_classifier_dir}")
  return shlex.join(["python", "-m", "ppgn_tf.evaluate", *args])


def main(argv):
  workdirs = argv[1:]
  try:
    notes = None
    if FLAGS.notes:
      if not os.path.isfile(FLAGS.notes):
        raise ValueError(f"--notes={FLAGS.notes}: no such file")
      with open(FLAGS.notes) as f:
        notes = f.read()
    check_workdirs(workdirs, FLAGS.evaluate)
    if FLAGS.evaluate:
      config = sample_lib.sampler_config_from_flags()
      for w in workdirs:
        if not os.path.isfile(os.path.join(w, evaluate_lib.EVALUATION_FILE)):
          logging.info("Evaluating %s", w)
          plan = evaluate_lib.make_plan(workdir=w, eval_classifier_dir=FLAGS.eval_classifier_dir)
          evaluate_lib.evaluate(plan, config, FLAGS.per_class, batch=FLAGS.batch,
                                command=_evaluate_command(w, config))
    build_report(workdirs, FLAGS.output, FLAGS.title, FLAGS.images_dir,
                 command=shlex.join(["python", "-m", "ppgn_tf.report", *sys.argv[1:]]), notes=notes)
  except ValueError as e:
    print(f"report: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
    return 1
  print(FLAGS.output)
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
