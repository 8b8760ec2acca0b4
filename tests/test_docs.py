"""The user documentation is tested, so a stale flag, a dead link or an example that no longer runs fails CI.

README and the guides (docs/*.md): every command of a program names only flags that program defines (the absl
definitions, read by `ppgn_tf.cli.flag_reference`), every flagfile it names exists and holds flags of train.py,
every relative link and picture exists (and every #anchor is a heading there), nothing links outside the
repository, docs/flags.md is what the definitions give, and the examples run on a tiny trained run: the Python
blocks, the REST bodies through a stand-in of TensorFlow Serving's REST API, the gRPC example through a stand-in
PredictionService, and the C example compiled against the installed TensorFlow.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import urllib.parse
from concurrent import futures
from http import server

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ppgn_tf.cli import flag_reference
from ppgn_tf.data import datasets
from ppgn_tf.sampling import sampler_config
from ppgn_tf.sampling import serving
from ppgn_tf.sampling import trained_run
from ppgn_tf.sampling.run_end import RunEnd
from ppgn_tf.training import train_lib

from conftest import REPO, tiny_config
from serving_requests import rest_to_tensors

README = os.path.join(REPO, "README.md")
DOCS = os.path.join(REPO, "docs")
# What a user reads: README and the guides. The generated reports under docs/reports/ record the commands that
# made them, so only their links are checked.
GUIDES = [README] + sorted(glob.glob(os.path.join(DOCS, "*.md")))
EVERY_MARKDOWN = GUIDES + sorted(glob.glob(os.path.join(DOCS, "reports", "**", "*.md"), recursive=True))
SCRIPTS = sorted(glob.glob(os.path.join(DOCS, "**", "*.sh"), recursive=True))
FLAG_REFERENCE = os.path.join(DOCS, "flags.md")
# README's two commands, byte for byte: CI runs the second (.ci/run), users paste the first.
QUICK_START = ("python3.11 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && python "
               "train.py --flagfile=flags/quickstart.cfg --workdir=runs/quickstart && python -m ppgn_tf.sample "
               "--saved_model=runs/quickstart/export --per_class=5 --gif_frames=0 "
               "--output_dir=runs/quickstart/samples_from_saved_model")
TEST_COMMAND = ("python3.11 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && python -m "
                "pytest -q -n 2")
README_MAX_LINES = 250
FIRST_SCREEN_LINES = 40


# --- Reading markdown ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Block:
  path: str
  line: int  # Of the opening fence, 1-based.
  language: str
  text: str

  @property
  def where(self) -> str:
    return f"{os.path.relpath(self.path, REPO)}:{self.line}"


def _read(path: str) -> str:
  with open(path) as f:
    return f.read()


def fenced_blocks(path: str) -> list[Block]:
  blocks, lines, i = [], _read(path).splitlines(), 0
  while i < len(lines):
    opening = re.match(r"^(```+)(\w*)\s*$", lines[i])
    if opening:
      end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(opening.group(1)))
      blocks.append(Block(path, i + 1, opening.group(2), "\n".join(lines[i + 1:end]) + "\n"))
      i = end
    i += 1
  return blocks


def prose(path: str) -> str:
  """The markdown without its fenced blocks (each replaced by as many empty lines)."""
  text = _read(path)
  for block in fenced_blocks(path):
    text = text.replace(block.text, "\n" * block.text.count("\n"), 1)
  return text


def inline_code(path: str) -> list[str]:
  """The `code spans` of a document's prose (a span may wrap onto the next line)."""
  return [" ".join(span.replace("\\|", "|").split()) for span in re.findall(r"`([^`]+)`", prose(path))]


def github_anchor(heading: str) -> str:
  """The id GitHub gives a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
  text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
  return text.replace(" ", "-")


def anchors(path: str) -> set[str]:
  seen, out = {}, set()
  for line in prose(path).splitlines():
    heading = re.match(r"^#{1,6}\s+(.*)$", line)
    if heading:
      anchor = github_anchor(heading.group(1))
      count = seen.get(anchor, 0)
      seen[anchor] = count + 1
      out.add(anchor if count == 0 else f"{anchor}-{count}")
  return out


def links(path: str) -> list[str]:
  text = prose(path)
  return (re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
          + re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", text))


# --- Reading shell commands ---------------------------------------------------------------------------------------

def _strip_comments(script: str) -> str:
  """The script without its # comments (a # that starts a word outside quotes, to the end of its line)."""
  out, quote, i = [], None, 0
  while i < len(script):
    c = script[i]
    if quote:
      quote = None if c == quote else quote
    elif c in "'\"":
      quote = c
    elif c == "#" and (i == 0 or script[i - 1] in " \t\n;"):
      while i < len(script) and script[i] != "\n":
        i += 1
      continue
    out.append(c)
    i += 1
  return "".join(out)


def shell_commands(script: str) -> list[list[str]]:
  """The simple commands of a shell script, as words; keywords (do, then, ...) and VAR=value prefixes dropped."""
  lexer = shlex.shlex(_strip_comments(script.replace("\\\n", " ")), posix=True, punctuation_chars=";&|\n")
  lexer.whitespace, lexer.whitespace_split, lexer.commenters = " \t\r", True, ""
  commands, words = [], []
  for token in list(lexer) + ["\n"]:
    if token and set(token) <= set(";&|\n"):
      if words:
        commands.append(words)
      words = []
    elif words or token not in ("do", "then", "else", "time", "{", "}"):
      words.append(token)
  out = []
  for words in commands:
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
      words = words[1:]
    if words and words[0] not in ("for", "while", "if", "case", "done", "fi", "esac"):
      out.append(words)
  return out


def program_of(words: list[str]) -> tuple[str | None, list[str]]:
  """(the program a command runs, its arguments), or (None, []) for a command that is not one of ours."""
  commands = {command: name for name, (_, run_as) in flag_reference.PROGRAMS.items() for command in run_as}
  for length in (3, 2, 1):
    head = " ".join(words[:length])
    if head in commands:
      return commands[head], words[length:]
  if words[:3] == ["python", "-m", flag_reference.__name__]:  # Writes docs/flags.md; it takes no flags.
    return None, []
  if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("ppgn_tf"):
    raise AssertionError(f"python -m {words[2]}: not a program of ppgn_tf")
  return None, []


def commands_in(path: str) -> list[tuple[str, list[str]]]:
  """(where, words) of every shell command in a document's bash blocks and inline code, or in a script."""
  if path.endswith(".sh"):
    return [(os.path.relpath(path, REPO), words) for words in shell_commands(_read(path))]
  found = [(block.where, words) for block in fenced_blocks(path) if block.language in ("bash", "sh")
           for words in shell_commands(block.text)]
  for span in inline_code(path):
    if re.match(r"(python |ppgn-|bash )", span):
      found += [(f"{os.path.relpath(path, REPO)}: `{span}`", words) for words in shell_commands(span)]
  return found


def _flag_names(flags_of_program: list[dict]) -> set[str]:
  names = {flag["name"] for flag in flags_of_program}
  return names | {"no" + flag["name"] for flag in flags_of_program if flag["kind"] == "bool"}


def flagfile_flags(path: str) -> list[str]:
  return [line.strip()[2:].split("=")[0] for line in _read(path).splitlines() if line.strip().startswith("--")]


@pytest.fixture(scope="module")
def program_flags() -> dict:
  return flag_reference.read_flags()


def check_command(where: str, words: list[str], program_flags: dict) -> list[str]:
  """The problems of one command: unknown program, unknown flag, missing flagfile or script."""
  problems = []
  program, arguments = program_of(words)
  if words[:1] == ["bash"] and len(words) > 1 and not words[1].startswith("-"):
    if not os.path.isfile(os.path.join(REPO, words[1])):
      problems.append(f"{where}: bash {words[1]}: no such script")
  if words[:1] == ["python"] and len(words) > 1 and words[1].endswith(".py"):
    if not os.path.isfile(os.path.join(REPO, words[1])):
      problems.append(f"{where}: python {words[1]}: no such file")
  if program is None:
    return problems
  known = _flag_names(program_flags[program]) | set(program_flags[flag_reference.ABSL])
  redirection = next((i for i, a in enumerate(arguments) if re.match(r"^\d*[<>]", a)), len(arguments))
  for argument in arguments[:redirection]:  # What follows a redirection (> log 2>&1) is the shell's.
    if argument.startswith("$"):  # A shell variable: flags the script builds (reproduce.sh's "$PRECISION").
      continue
    if not argument.startswith("--"):
      if program != "report":  # report takes workdirs; the others refuse arguments.
        problems.append(f"{where}: {program} takes flags only, not {argument!r}")
      continue
    name, _, value = argument[2:].partition("=")
    if name not in known:
      problems.append(f"{where}: {program} has no flag --{name}")
    if name == "flagfile" and "$" not in value:
      flagfile = os.path.join(REPO, value)
      if not os.path.isfile(flagfile):
        problems.append(f"{where}: --flagfile={value}: no such file")
      else:
        problems += [f"{where}: {value}: {program} has no flag --{f}" for f in flagfile_flags(flagfile)
                     if f not in known]
  return problems


# --- Commands, flags, links ---------------------------------------------------------------------------------------

def test_every_command_names_flags_its_program_defines(program_flags):
  problems, checked = [], 0
  for path in GUIDES + SCRIPTS:
    for where, words in commands_in(path):
      problems += check_command(where, words, program_flags)
      checked += program_of(words)[0] is not None
  assert not problems, "\n".join(problems)
  assert checked > 50, f"only {checked} commands of ours found: is the parser still reading the documents?"


def test_every_flag_in_the_text_is_a_flag_of_some_program(program_flags):
  """`--name` in prose (tables, sentences) names a flag of one of the programs."""
  every = set(program_flags[flag_reference.ABSL]).union(*(_flag_names(f) for p, f in program_flags.items()
                                                          if p != flag_reference.ABSL))
  problems = []
  for path in GUIDES:
    if path == FLAG_REFERENCE:  # Generated from the definitions; test_flag_reference_is_generated checks it.
      continue
    for span in inline_code(path):
      words = span.split()
      if words and all(w.startswith("--") for w in words):
        problems += [f"{os.path.relpath(path, REPO)}: `{span}`: no program has --{m.group(1)}"
                     for w in words for m in [re.match(r"--([A-Za-z0-9_]+)", w)] if m and m.group(1) not in every]
  assert not problems, "\n".join(problems)


def test_every_flagfile_holds_flags_of_train(program_flags):
  known = _flag_names(program_flags["train"]) | set(program_flags[flag_reference.ABSL])
  for flagfile in glob.glob(os.path.join(REPO, "flags", "*.cfg")):
    unknown = [f for f in flagfile_flags(flagfile) if f not in known]
    assert not unknown, f"{flagfile}: train.py has no flag {unknown}"


def test_the_programs_are_the_commands_pyproject_installs():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    scripts = tomllib.load(f)["project"]["scripts"]
  for script, target in scripts.items():
    program = next((p for p, (_, run_as) in flag_reference.PROGRAMS.items() if script in run_as), None)
    assert program is not None, f"{script} is installed but not in flag_reference.PROGRAMS"
    assert target == f"{flag_reference.PROGRAMS[program][0]}:run", (script, target)
  for module, run_as in flag_reference.PROGRAMS.values():
    for command in run_as:
      if command.startswith("python -m "):
        assert os.path.isfile(os.path.join(REPO, *command.split()[2].split(".")) + ".py"), command
      elif command.startswith("python "):
        assert os.path.isfile(os.path.join(REPO, command.split()[1])), command
      else:
        assert command in scripts, command


def test_flag_reference_is_generated_from_the_definitions(program_flags):
  expected = flag_reference.markdown(program_flags)
  assert _read(FLAG_REFERENCE) == expected, ("docs/flags.md differs from the flag definitions: run "
                                             "python -m ppgn_tf.cli.flag_reference docs/flags.md")
  for program, flags_of_program in program_flags.items():
    if program != flag_reference.ABSL:
      assert flags_of_program, f"{program}: no flags read"


def test_every_relative_link_and_picture_exists_inside_the_repository():
  problems = []
  for path in EVERY_MARKDOWN:
    where = os.path.relpath(path, REPO)
    for target in links(path):
      if re.match(r"[a-z]+:", target):  # https:, mailto:
        continue
      file_part, _, anchor = target.partition("#")
      resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
      if not (resolved + os.sep).startswith(REPO + os.sep):
        problems.append(f"{where}: {target} leads outside the repository")
      elif not os.path.exists(resolved):
        problems.append(f"{where}: {target}: no such file")
      elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
        problems.append(f"{where}: {target}: no heading #{anchor} in {os.path.relpath(resolved, REPO)}")
  assert not problems, "\n".join(problems)


def test_nothing_points_outside_the_repository_or_at_a_commit():
  for path in GUIDES:
    text = _read(path)
    assert "../shared" not in text and "/work/" not in text, f"{path}: names a file a clone does not have"
    hashes = [h for h in re.findall(r"\b[0-9a-f]{7,40}\b", prose(path)) if re.search(r"[a-f]", h)
              and re.search(r"\d", h)]
    assert not hashes, f"{path}: commit hashes {hashes}: say what the figure is, not when it was made"


def test_the_index_lists_every_document():
  listed = {os.path.normpath(os.path.join(DOCS, target.partition("#")[0]))
            for target in links(os.path.join(DOCS, "README.md"))}
  documents = [p for p in EVERY_MARKDOWN if p != README and not p.endswith(("docs/README.md", "notes.md"))]
  missing = [os.path.relpath(p, REPO) for p in documents if p not in listed]
  assert not missing, f"docs/README.md does not list {missing}"


def test_readme_starts_with_the_quick_start_and_stays_short():
  text = _read(README)
  lines = text.splitlines()
  assert len(lines) <= README_MAX_LINES, f"README has {len(lines)} lines (at most {README_MAX_LINES})"
  assert QUICK_START in lines and TEST_COMMAND in lines, "README's two commands changed: CI runs the second"
  first_screen = lines[:FIRST_SCREEN_LINES]
  assert QUICK_START in first_screen, "the quick start's command belongs on README's first screen"
  assert any("<img" in line and "quickstart_samples.png" in line for line in first_screen), \
      "the quick start's picture belongs on README's first screen"
  first_text = "\n".join(first_screen)
  assert re.search(r"\d+ min \d+ s", first_text) and "lscpu" in first_text, "its time, on a named CPU"
  assert "samples_from_saved_model" in prose(README), "what the quick start's last step leaves"


# --- The examples run ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, trained_workdir, small_idx_dir):
  """A directory laid out as the documents assume: runs/quickstart (a tiny trained run with its export) and
  models/ppgn/1 (the same export), and digit.png, a test digit."""
  root = tmp_path_factory.mktemp("docs_sandbox")
  workdir = root / "runs" / "quickstart"
  shutil.copytree(trained_workdir, workdir)
  model = trained_run.load_trained(str(workdir))
  config = sampler_config.preset("default")
  prior = trained_run.load_code_prior(str(workdir), model)
  archive = serving.build_archive(model.sampling_generator, model.encoder, config, model.config.code_layer, prior)
  for base in (workdir / "export", root / "models" / "ppgn"):
    serving.write(archive, str(base))
  _, test = datasets.load_arrays(f"idx:{small_idx_dir}")
  Image.fromarray(test.images[0, :, :, 0]).save(root / "digit.png")
  return root


def _substituted(block: Block, substitutions: dict[str, str]) -> str:
  """The block's code with test-sized values; each substitution must apply, so a changed example fails here
  instead of running at full size."""
  code = block.text
  for old, new in substitutions.items():
    assert old in code, f"{block.where}: the example no longer has {old!r}: update tests/test_docs.py"
    code = code.replace(old, new)
  return code


def run_python_blocks(path: str, cwd, substitutions: dict[str, dict[str, str]] | None = None,
                      only=lambda block: True) -> dict:
  """Runs a document's python blocks in order, in one namespace, in `cwd`; returns the namespace.
  `substitutions`: the first line of a block -> {text: replacement} for that block."""
  namespace, previous = {"__name__": "__docs__"}, os.getcwd()
  os.chdir(cwd)
  try:
    for block in fenced_blocks(path):
      if block.language != "python" or not only(block):
        continue
      first_line = block.text.splitlines()[0]
      code = _substituted(block, (substitutions or {}).get(first_line, {}))
      exec(compile(code, block.where, "exec"), namespace)  # noqa: S102  The documentation's own examples.
  finally:
    os.chdir(previous)
  return namespace


def test_every_python_and_c_block_at_least_compiles():
  for path in GUIDES:
    for block in fenced_blocks(path):
      if block.language == "python":
        compile(block.text, block.where, "exec")
  assert [b for b in fenced_blocks(os.path.join(DOCS, "serving.md")) if b.language == "c"]


def test_the_numpy_to_idx_example_writes_what_idx_reads(tmp_path):
  run_python_blocks(os.path.join(DOCS, "your_data.md"), tmp_path)
  written_train, written_test = datasets.load_arrays(f"idx:{tmp_path / 'my_digits'}")
  train, test = datasets.load_arrays("mnist_offline")
  np.testing.assert_array_equal(written_train.images, train.images)
  np.testing.assert_array_equal(written_train.labels, train.labels)
  np.testing.assert_array_equal(written_test.images, test.images)
  np.testing.assert_array_equal(written_test.labels, test.labels)


def test_the_encoder_example_saves_an_encoder_train_py_takes(tmp_path, small_idx_dir):
  first_line = "import keras"
  run_python_blocks(os.path.join(DOCS, "your_encoder.md"), tmp_path, {first_line: {
      '"mnist_offline"': f'"idx:{small_idx_dir}"', "epochs=3": "epochs=1", "verbose=2": "verbose=0"}})
  encoder_dir = str(tmp_path / "encoders" / "small_cnn")
  options = train_lib.RunOptions(workdir=str(tmp_path / "run"), dataset=f"idx:{small_idx_dir}",
                                 encoder_dir=encoder_dir, max_generator_steps=1, verbose=0, checkpoint_every=0,
                                 image_every=0)
  summary = train_lib.train(tiny_config(latent_critics=("fc1", "conv3")), options, RunEnd(sample_per_class=1))
  assert summary["generator_steps"] == 1 and 0 <= summary["encoder_test_accuracy"] <= 1


def test_the_python_api_examples_run(sandbox, small_idx_dir, encoder_dir):
  namespace = run_python_blocks(os.path.join(DOCS, "python_api.md"), sandbox, {
      "from ppgn_tf.sampling.run_end import RunEnd": {
          "dim=16": "dim=2", '"mnist_offline", encoder_epochs=3': f'"idx:{small_idx_dir}", encoder_dir="{encoder_dir}"',
          "CriticSchedule(iterations=5, long_iterations=20, warmup_generator_steps=10)":
              "CriticSchedule(iterations=2, long_iterations=3, warmup_generator_steps=1)",
          "max_generator_steps=600": "max_generator_steps=2, verbose=0", "sample_per_class=5": "sample_per_class=1"},
      "from ppgn_tf.data import datasets": {'"mnist_offline"': f'"idx:{small_idx_dir}"'}})
  assert namespace["summary"]["generator_steps"] == 2
  assert namespace["images"].shape == (40, 28, 28, 1)
  assert namespace["completed"]["images"].shape == (10, 28, 28, 1)
  eights = namespace["eights"]["images"].numpy()
  assert eights.shape == (4, 28, 28, 1) and np.abs(eights[0] - eights[1]).max() > 1e-3
  assert os.path.isfile(os.path.join(sandbox, namespace["path"], "saved_model.pb"))


def test_the_sampling_guides_mask_example_holds():
  run_python_blocks(os.path.join(DOCS, "sampling.md"), REPO)


class FakeTensorFlowServing(server.ThreadingHTTPServer):
  """Answers TensorFlow Serving's REST predict requests from a SavedModel, in the format its REST API documents:
  the row form (`instances`) gets `predictions`, a list of one object per row (or of values when the signature
  has one output); the columnar form (`inputs`) gets `outputs`, an object of one list per output (or the list);
  an error gets HTTP 400 and {"error": ...}."""

  def __init__(self, saved_model: str):
    self.model = tf.saved_model.load(saved_model)
    self.requests = []
    super().__init__(("127.0.0.1", 0), _PredictHandler)

  def predict(self, path: str, body: dict) -> dict:
    match = re.fullmatch(r"/v1/models/ppgn(?:/versions/\d+)?:predict", path)
    if not match:
      raise KeyError(f"no model at {path}")
    signature = self.model.signatures[body.get("signature_name", "serving_default")]
    outputs = {k: v.numpy() for k, v in signature(**rest_to_tensors(body, signature)).items()}
    self.requests.append((body.get("signature_name", "serving_default"), "instances" in body))
    if "instances" in body:
      rows = [{k: v[i].tolist() for k, v in outputs.items()} for i in range(len(next(iter(outputs.values()))))]
      return {"predictions": [next(iter(r.values())) if len(r) == 1 else r for r in rows]}
    return {"outputs": next(iter(outputs.values())).tolist() if len(outputs) == 1
            else {k: v.tolist() for k, v in outputs.items()}}


class _PredictHandler(server.BaseHTTPRequestHandler):
  def do_POST(self):  # noqa: N802  http.server's name.
    try:
      body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
      status, answer = 200, self.server.predict(urllib.parse.urlparse(self.path).path, body)
    except Exception as e:  # noqa: BLE001  Every failure is the client's 400, as TensorFlow Serving answers.
      status, answer = 400, {"error": f"{type(e).__name__}: {e}"}
    data = json.dumps(answer).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


@pytest.fixture(scope="module")
def rest_server(sandbox):
  fake = FakeTensorFlowServing(str(sandbox / "models" / "ppgn" / "1"))
  thread = threading.Thread(target=fake.serve_forever, daemon=True)
  thread.start()
  yield fake
  fake.shutdown()
  fake.server_close()


def test_the_rest_examples_get_answers(sandbox, rest_server):
  port = rest_server.server_address[1]
  serving_md = os.path.join(DOCS, "serving.md")
  run_python_blocks(serving_md, sandbox, {"import json": {"localhost:8501": f"localhost:{port}"}},
                    only=lambda block: "localhost:8501" in block.text)
  for name in ("samples.png", "inpainted.png", "inpainted_varied.png", "reconstructed.png"):
    assert Image.open(sandbox / name).size == (28 * (1 if name == "reconstructed.png" else 2), 28), name
  # Every curl body of the guides and README, sent to the same stand-in.
  sent = 0
  for path in (README, serving_md):
    for where, words in commands_in(path):
      if words[0] != "curl":
        continue
      url = next(w for w in words if "localhost:8501" in w)
      body = json.loads(words[words.index("-d") + 1])
      answer = rest_server.predict(urllib.parse.urlparse("http://" + url).path, body)
      assert "predictions" in answer or "outputs" in answer, where
      sent += 1
  assert sent >= 5
  signatures = {signature for signature, _ in rest_server.requests}
  assert signatures == {"serving_default", "sample", "inpaint", "inpaint_varied", "generate",
                        "encode"}, signatures


def test_the_grpc_example_and_body_reach_the_signatures(sandbox):
  predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")  # requirements.txt installs it.
  from google.protobuf import text_format
  from tensorflow_serving.apis import prediction_service_pb2_grpc
  import grpc

  model = tf.saved_model.load(str(sandbox / "models" / "ppgn" / "1"))

  class FakePredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):  # noqa: N802  The service's name.
      assert request.model_spec.name == "ppgn"
      signature = model.signatures[request.model_spec.signature_name or "serving_default"]
      outputs = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
      response = predict_pb2.PredictResponse()
      for k, v in outputs.items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
      return response

  grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(FakePredictionService(), grpc_server)
  port = grpc_server.add_insecure_port("127.0.0.1:0")
  grpc_server.start()
  try:
    serving_md = os.path.join(DOCS, "serving.md")
    namespace = run_python_blocks(serving_md, sandbox, {"import grpc": {"localhost:8500": f"127.0.0.1:{port}"}},
                                  only=lambda block: "localhost:8500" in block.text)
    assert namespace["images"].shape == (2, 28, 28, 1)
    completions = namespace["completions"]  # inpaint_varied: two seeds, two completions of one digit.
    assert completions.shape == (2, 28, 28, 1) and np.abs(completions[0] - completions[1]).max() > 1e-3
  finally:
    grpc_server.stop(None)
  text_body = next(b for b in fenced_blocks(serving_md) if b.language == "" and "model_spec" in b.text)
  request = text_format.Parse(text_body.text, predict_pb2.PredictRequest())
  served = model.signatures[request.model_spec.signature_name](
      **{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
  assert served["images"].shape == (2, 28, 28, 1)


def test_the_python_loading_examples_run(sandbox):
  namespace = run_python_blocks(os.path.join(DOCS, "serving.md"), sandbox,
                                only=lambda block: block.text.startswith("import tensorflow as tf"))
  assert namespace["images"].shape == (2, 28, 28, 1)
  np.testing.assert_allclose(namespace["result"]["images"], namespace["images"], atol=1e-5)


def test_the_c_example_builds_and_samples(sandbox, tmp_path):
  if shutil.which("gcc") is None:
    pytest.skip("no C compiler")
  serving_md = os.path.join(DOCS, "serving.md")
  source = next(b for b in fenced_blocks(serving_md) if b.language == "c")
  (sandbox / "load_sampler.c").write_text(source.text)
  build = next(b for b in fenced_blocks(serving_md) if b.language == "bash" and "load_sampler.c" in b.text)
  script = build.text
  # gold links against TensorFlow's 1 GB library in seconds instead of tens of seconds, where it is installed.
  if subprocess.run(["gcc", "-fuse-ld=gold", "-Wl,--version"], capture_output=True).returncode == 0:
    script = script.replace("gcc ", "gcc -fuse-ld=gold ", 1)
  env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=sandbox, env=env, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "2 images of 28x28" in result.stdout, result.stdout[-2000:]
