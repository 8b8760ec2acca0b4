"""`pip install .` gives the console commands ppgn-train, ppgn-export, ... with the programs' flags.

The package is installed into a fresh virtual environment that reuses this environment's installed
dependencies (a .pth file naming their site-packages; a venv's --system-site-packages would name the
base interpreter's, which lacks TensorFlow), without an index: pip must find every dependency that
pyproject.toml declares already installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

from conftest import REPO

COMMANDS = ("ppgn-train", "ppgn-export", "ppgn-sample", "ppgn-evaluate", "ppgn-report", "ppgn-bench", "ppgn-sweep",
            "ppgn-train-classifier")


def _run(args, cwd, **kwargs):
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs)


def test_pip_install_gives_the_console_commands(tmp_path):
  # A copy of the checkout: building writes build/ and *.egg-info beside the sources.
  source = tmp_path / "source"
  shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", "docs", "tests"))
  venv = tmp_path / "venv"
  made = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
  assert made.returncode == 0, made.stderr
  python = venv / "bin" / "python"
  site_packages = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=tmp_path).stdout.strip()
  with open(os.path.join(site_packages, "reuse_installed_dependencies.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")

  installed = _run([str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation", "."], cwd=source)
  assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]
  for command in COMMANDS:
    assert (venv / "bin" / command).is_file(), command

  # From outside any checkout: the installed package, not the sources, answers.
  where = _run([str(python), "-c", "import ppgn_tf.cli.train; print(ppgn_tf.cli.train.__file__)"], cwd=tmp_path)
  assert where.stdout.strip().startswith(site_packages), where.stdout + where.stderr
  helps = {c: subprocess.Popen([str(venv / "bin" / c), "--helpfull"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""})
           for c in ("ppgn-train", "ppgn-export", "ppgn-sweep")}
  expected = {"ppgn-train": ("--workdir", "--flagfile", "--latent_critics", "--preemption_grace_s", "--image_every"),
              "ppgn-export": ("--workdir", "--export_dir", "--sampler_preset", "--steps"),
              "ppgn-sweep": ("--workdir", "--grid", "--min_accuracy", "--output")}
  for command, process in helps.items():
    out, err = process.communicate(timeout=300)
    text = out + err
    assert "Traceback" not in text, text[-3000:]
    for flag in expected[command]:
      assert flag in text, (command, flag)


def test_every_program_has_its_console_command():
  """Each program in ppgn_tf/cli (a module whose `run` is its entry point) is a [project.scripts] command, and the
  COMMANDS installed above are those."""
  import tomllib
  cli = os.path.join(REPO, "ppgn_tf", "cli")
  programs = sorted(name[:-3] for name in os.listdir(cli) if name.endswith(".py")
                    and "\nrun = runner.runner(main)" in open(os.path.join(cli, name)).read())
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    scripts = tomllib.load(f)["project"]["scripts"]
  assert sorted(target.split(":")[0].rsplit(".", 1)[1] for target in scripts.values()) == programs
  assert all(target.endswith(":run") for target in scripts.values())
  # A command is the program's module name with dashes: train_classifier -> ppgn-train-classifier.
  assert sorted(scripts) == sorted(COMMANDS) == sorted(f"ppgn-{p.replace('_', '-')}" for p in programs)
