"""Writing files so that readers never see a half-written one, and the check that a directory holds one."""

from __future__ import annotations

import errno
import json
import os
import re
import secrets


class StorageError(OSError):
  """A file or directory could not be written (disk full, read-only, a path that cannot exist).

  Its message is one line naming the path and the cause. An OSError, so existing handlers still catch it.
  """


def cause(error: BaseException) -> str:
  """Why a write failed, in a few words: "ENOSPC: No space left on device", or a TensorFlow error's first line."""
  if isinstance(error, StorageError):
    return str(error)
  if isinstance(error, OSError) and error.errno in errno.errorcode:
    return f"{errno.errorcode[error.errno]}: {error.strerror or os.strerror(error.errno)}"
  text = (str(error).strip().splitlines() or [""])[0]
  # TensorFlow wraps the OS message in the failing op's names: "{{function_node ...}} PATH; CAUSE [Op:SaveV2]".
  text = re.sub(r"\s*\[Op:\w+\]$", "", re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text))
  return f"{type(error).__name__}: {text}"


def required_file(directory: str, name: str, kind: str, error=ValueError) -> str:
  """directory/name, which train.py writes into every `kind` of directory (a workdir, an encoder directory);
  raises `error` with one line when the directory or the file is missing."""
  if not os.path.isdir(directory):
    raise error(f"{directory}: no such {kind}")
  path = os.path.join(directory, name)
  if not os.path.isfile(path):
    article = "an" if kind[0] in "aeiou" else "a"
    raise error(f"{path}: missing (not {article} {kind} written by train.py)")
  return path


def make_directory(path, what: str = "directory") -> None:
  """os.makedirs(exist_ok=True), failing with a StorageError that names `what` (e.g. "--workdir=...")."""
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise StorageError(f"{what}: cannot create it ({cause(e)})") from e


def atomic_write(path, write) -> None:
  """Calls write(binary file) on a temp file beside `path`, then atomically replaces `path`.

  On any failure the temp file is removed and an existing `path` is left as it was. A failure of
  the file system (e.g. a full disk) raises StorageError naming `path`.
  """
  path = os.fspath(path)
  directory, name = os.path.split(os.path.abspath(path))
  make_directory(directory, directory)
  tmp_path = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
  try:
    # os.open with 0o666 lets the umask decide permissions (tempfile would not).
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  except OSError as e:
    raise StorageError(f"{path}: not written ({cause(e)})") from e
  try:
    with os.fdopen(fd, "wb") as out:
      write(out)
      out.flush()
      os.fsync(out.fileno())
    os.replace(tmp_path, path)
  except BaseException as e:
    try:
      os.remove(tmp_path)
    except OSError:
      pass
    if isinstance(e, OSError) and not isinstance(e, StorageError):
      raise StorageError(f"{path}: not written ({cause(e)})") from e
    raise


def write_json(path, obj) -> None:
  """Writes `obj` as indented JSON, atomically."""
  atomic_write(path, lambda out: out.write(json.dumps(obj, indent=2).encode()))
