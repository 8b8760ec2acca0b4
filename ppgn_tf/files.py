"""Writing files and directories so that readers never see a half-written one (`write_atomically`, the one
writer), and the check that a directory holds one."""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil


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


# Temporaries are hidden siblings of their target named .tmp-PID-TOKEN-NAME: they keep the target's ending (Keras
# saves only to a name ending in .keras), and the PID tells whether their writer still runs.
_TEMPORARY = re.compile(r"\.tmp-(\d+)-[0-9a-f]{8}-(.+)")


def write_atomically(path, make, *, what: str = "", failures=(OSError,)) -> None:
  """The one writer of every file and directory a run leaves: JSON, pictures, arrays, Keras models, SavedModels.

  `make(temporary)` creates `temporary` (a file, or a directory tree) beside `path`; every file in it is then
  flushed to disk and one rename puts it at `path`. Readers see the old `path` or the whole new one, never a
  part. On a failure the temporary is removed and `path` is left as it was; a process killed midway leaves only
  its temporary, which the next write of the same `path` removes. A directory replaces only an empty one.

  A failure of the file system (`failures`: OSError, or also what the caller's library raises for one) raises
  StorageError, one line naming `path` (`what`, e.g. "export", names the kind of output).
  """
  path = os.fspath(path)
  directory, name = os.path.split(os.path.abspath(path))
  make_directory(directory, directory)
  _remove_abandoned_temporaries(directory, name)
  temporary = os.path.join(directory, f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{name}")
  try:
    make(temporary)
    _flush_to_disk(temporary)
    os.replace(temporary, path)
  except BaseException as e:
    _remove(temporary)
    if isinstance(e, failures) and not isinstance(e, StorageError):
      raise StorageError(f"{path}: {what + ' ' if what else ''}not written ({cause(e)}); its partial files are "
                         "removed") from e
    raise


def atomic_write(path, write) -> None:
  """Calls write(binary file) on a new file, which `write_atomically` then puts at `path`."""
  def make(temporary):
    with open(temporary, "xb") as out:  # Permissions from the umask, as for any new file.
      write(out)
  write_atomically(path, make)


def _flush_to_disk(path: str) -> None:
  """fsync of `path`, or of every file under it: the rename must not reach the disk before the data."""
  paths = [path] if not os.path.isdir(path) else [os.path.join(d, n) for d, _, names in os.walk(path) for n in names]
  for p in paths:
    fd = os.open(p, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


def _remove(path: str) -> None:
  """Removes a file or a directory tree, as far as it can (clean-up must not hide the error it follows)."""
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  else:
    try:
      os.remove(path)
    except OSError:
      pass


def _remove_abandoned_temporaries(directory: str, name: str) -> None:
  """Removes the temporaries of `name` whose writer no longer runs on this machine (a killed process')."""
  try:
    entries = os.listdir(directory)
  except OSError:
    return
  for entry in entries:
    match = _TEMPORARY.fullmatch(entry)
    if match and match.group(2) == name and not _running(int(match.group(1))):
      _remove(os.path.join(directory, entry))


def _running(pid: int) -> bool:
  try:
    os.kill(pid, 0)  # Signal 0: only asks whether the process exists.
  except ProcessLookupError:
    return False
  except OSError:  # Exists, but another user's.
    return True
  return True


def write_json(path, obj) -> None:
  """Writes `obj` as indented JSON, atomically."""
  atomic_write(path, lambda out: out.write(json.dumps(obj, indent=2).encode()))
