"""Writing files so that readers never see a half-written one."""

from __future__ import annotations

import json
import os
import secrets


def atomic_write(path, write) -> None:
  """Calls write(binary file) on a temp file beside `path`, then atomically replaces `path`.

  On any failure the temp file is removed and an existing `path` is left as it was.
  """
  path = os.fspath(path)
  directory, name = os.path.split(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp_path = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
  # os.open with 0o666 lets the umask decide permissions (tempfile would not).
  fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, "wb") as out:
      write(out)
      out.flush()
      os.fsync(out.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    try:
      os.remove(tmp_path)
    except OSError:
      pass
    raise


def write_json(path, obj) -> None:
  """Writes `obj` as indented JSON, atomically."""
  atomic_write(path, lambda out: out.write(json.dumps(obj, indent=2).encode()))
