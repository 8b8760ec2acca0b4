"""Reading and writing IDX files, the format MNIST is distributed in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the data in
big-endian C order. Files whose names end in ".gz" are gzip-compressed.

Pure numpy + stdlib so data checks stay fast and importable without TensorFlow.
Every problem is raised as IdxFormatError with a one-line message that starts
with the offending path, so callers can show it to the user unchanged.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import NamedTuple

import numpy as np

from ppgn_tf import files

# Type code -> big-endian dtype of the data as stored on disk.
_DTYPE_BY_CODE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (numpy kind, itemsize) -> type code; keyed this way so that arrays of either
# byte order map to the same code.
_CODE_BY_KIND = {(dt.kind, dt.itemsize): code for code, dt in _DTYPE_BY_CODE.items()}

_UBYTE = 0x08
_MAGIC_BYTES = 4
# The largest possible header: magic + 255 uint32 dimensions. Reading this many
# bytes is always enough to parse a header without knowing ndim in advance.
_MAX_HEADER_BYTES = _MAGIC_BYTES + 4 * 255
_GZIP_SIGNATURE = b"\x1f\x8b"

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Every data set here holds 28x28 grayscale images of ten classes (digits or garments 0..9). The one definition of
# both, which every network, picture and signature reads.
IMAGE_SIZE = (28, 28)
IMAGE_SHAPE = (*IMAGE_SIZE, 1)  # Height, width, channels of one image as the networks see it.
NUM_CLASSES = 10


class IdxFormatError(ValueError):
  """A missing, unreadable or malformed IDX file or directory."""


class IdxHeader(NamedTuple):
  type_code: int
  shape: tuple[int, ...]
  header_bytes: int  # Offset of the first data byte.

  @property
  def dtype(self) -> np.dtype:
    return _DTYPE_BY_CODE[self.type_code]

  @property
  def data_bytes(self) -> int:
    # math.prod on Python ints: no overflow for absurd headers.
    return math.prod(self.shape) * self.dtype.itemsize


def _is_gzip_path(path: str) -> bool:
  return path.endswith(".gz")


def _one_line(text: str) -> str:
  return " ".join(str(text).split())


def _type_name(code: int) -> str:
  dtype = _DTYPE_BY_CODE.get(code)
  return dtype.newbyteorder("=").name if dtype is not None else "unknown"


def _parse_header(path: str, head: bytes) -> IdxHeader:
  """Parses the header at the start of `head` (which may hold more bytes)."""
  if len(head) < _MAGIC_BYTES:
    raise IdxFormatError(
        f"{path}: truncated: file has {len(head)} bytes, too short for the "
        f"{_MAGIC_BYTES}-byte IDX magic number")
  # A zero type code is never valid; an all-zero start (e.g. a preallocated,
  # never-written download) is better reported as "not IDX" than as a type.
  if head[0] != 0 or head[1] != 0 or head[2] == 0:
    magic = int.from_bytes(head[:_MAGIC_BYTES], "big")
    # The most likely mix-up: a compressed file that lost its ".gz" suffix.
    hint = ("; the file looks gzip-compressed, name it with a .gz suffix"
            if head.startswith(_GZIP_SIGNATURE) else "")
    raise IdxFormatError(
        f"{path}: bad magic number 0x{magic:08X} (expected an IDX header: "
        f"0x0000 then a type code and a dimension count{hint})")
  type_code, ndim = head[2], head[3]
  if type_code not in _DTYPE_BY_CODE:
    supported = ", ".join(f"0x{c:02X}" for c in _DTYPE_BY_CODE)
    raise IdxFormatError(
        f"{path}: unsupported IDX type code 0x{type_code:02X} "
        f"(supported: {supported})")
  header_bytes = _MAGIC_BYTES + 4 * ndim
  if len(head) < header_bytes:
    raise IdxFormatError(
        f"{path}: truncated: header declares {ndim} dimensions "
        f"({header_bytes} header bytes), file has {len(head)} bytes")
  shape = struct.unpack(f">{ndim}I", head[_MAGIC_BYTES:header_bytes])
  return IdxHeader(type_code, tuple(int(d) for d in shape), header_bytes)


def _check_data_length(path: str, header: IdxHeader, actual: int) -> None:
  """`actual` is the number of bytes after the header."""
  expected = header.data_bytes
  if actual < expected:
    raise IdxFormatError(
        f"{path}: truncated: header says {expected} data bytes, file has "
        f"{actual} (shape {header.shape}, {_type_name(header.type_code)})")
  if actual > expected:
    raise IdxFormatError(
        f"{path}: has {actual - expected} trailing bytes after the {expected} "
        f"data bytes its header describes (shape {header.shape})")


def _read_bytes(path: str, max_bytes: int = -1) -> bytes:
  """Reads (and gunzips) up to `max_bytes` bytes, or the whole file if -1."""
  try:
    raw = open(path, "rb")
  except FileNotFoundError:
    raise IdxFormatError(f"{path}: file not found") from None
  except IsADirectoryError:
    raise IdxFormatError(f"{path}: is a directory, expected an IDX file") from None
  except OSError as e:
    raise IdxFormatError(f"{path}: cannot open: {_one_line(e.strerror or e)}") from None
  with raw:
    try:
      if _is_gzip_path(path):
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
          return unzipped.read(max_bytes)
      return raw.read(max_bytes)
    # BadGzipFile: wrong signature; EOFError: stream cut short; zlib.error:
    # corrupt deflate data. All mean the same thing to the user.
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
      raise IdxFormatError(
          f"{path}: not a valid gzip file ({_one_line(e)})") from None
    except OSError as e:
      raise IdxFormatError(f"{path}: cannot read: {_one_line(e)}") from None


def read_idx_header(path: str) -> IdxHeader:
  """Reads and validates only the header of an IDX file (cheap)."""
  return _parse_header(path, _read_bytes(path, _MAX_HEADER_BYTES))


def read_idx(path: str) -> np.ndarray:
  """Reads a whole IDX file (gunzipping "*.gz") into a native-byte-order array."""
  contents = _read_bytes(path)
  header = _parse_header(path, contents)
  _check_data_length(path, header, len(contents) - header.header_bytes)
  count = header.data_bytes // header.dtype.itemsize
  data = np.frombuffer(contents, header.dtype, count=count, offset=header.header_bytes)
  # astype copies, so the result is writable and no longer pins `contents`.
  return data.reshape(header.shape).astype(header.dtype.newbyteorder("="))


def _encode(path: str, array: np.ndarray) -> bytes:
  code = _CODE_BY_KIND.get((array.dtype.kind, array.dtype.itemsize))
  if code is None:
    supported = ", ".join(_type_name(c) for c in _DTYPE_BY_CODE)
    raise IdxFormatError(
        f"{path}: cannot write dtype {array.dtype} as IDX (supported: {supported})")
  if array.ndim > 255 or any(d > 0xFFFFFFFF for d in array.shape):
    raise IdxFormatError(f"{path}: shape {array.shape} does not fit an IDX header")
  header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  # tobytes() emits C order whatever the memory layout of `array`.
  return header + array.astype(_DTYPE_BY_CODE[code], copy=False).tobytes()


def write_idx(path: str, array: np.ndarray) -> None:
  """Writes `array` as an IDX file, gzip-compressed if `path` ends in ".gz".

  The bytes go to a temporary file in the same directory that then atomically
  replaces `path`, so readers never see a half-written file.
  """
  payload = _encode(path, np.asarray(array))
  name = os.path.basename(path)

  def write(out):
    if _is_gzip_path(path):
      # Fixed mtime and inner name keep the output byte-reproducible.
      with gzip.GzipFile(filename=name[:-len(".gz")], mode="wb", fileobj=out, mtime=0) as zipped:
        zipped.write(payload)
    else:
      out.write(payload)

  files.atomic_write(path, write)


def find_idx_file(directory: str, stem: str) -> str:
  """Returns directory/stem, or directory/stem.gz if only that exists."""
  plain = os.path.join(directory, stem)
  for candidate in (plain, plain + ".gz"):
    if os.path.isfile(candidate):
      return candidate
  raise IdxFormatError(f"{plain}: file not found (also looked for {stem}.gz)")


def _require_directory(directory: str) -> None:
  if not os.path.exists(directory):
    raise IdxFormatError(f"{directory}: no such directory")
  if not os.path.isdir(directory):
    raise IdxFormatError(f"{directory}: not a directory")


def _check_mnist_header(path: str, header: IdxHeader, is_images: bool) -> None:
  if header.type_code != _UBYTE:
    raise IdxFormatError(
        f"{path}: expected unsigned bytes (type code 0x08), header says "
        f"0x{header.type_code:02X} ({_type_name(header.type_code)})")
  if is_images:
    if len(header.shape) != 3:
      raise IdxFormatError(
          f"{path}: expected 3-D images [count, {IMAGE_SIZE[0]}, {IMAGE_SIZE[1]}], header has shape {header.shape}")
    if header.shape[1:] != IMAGE_SIZE:
      height, width = header.shape[1:]
      raise IdxFormatError(
          f"{path}: expected {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} images, header says {height}x{width}")
  elif len(header.shape) != 1:
    raise IdxFormatError(
        f"{path}: expected 1-D labels [count], header has shape {header.shape}")


def _checked_split_paths(directory: str) -> dict[str, str]:
  """Validates headers and sizes of the four MNIST files; returns their paths."""
  _require_directory(directory)
  paths = {key: find_idx_file(directory, stem) for key, stem in MNIST_FILES.items()}
  headers = {}
  for key, path in paths.items():
    header = read_idx_header(path)
    _check_mnist_header(path, header, is_images=key.endswith("_images"))
    # Only plain files: a .gz size says nothing about the data length without
    # decompressing it all, which read_idx does anyway.
    if not _is_gzip_path(path):
      _check_data_length(path, header, os.path.getsize(path) - header.header_bytes)
    headers[key] = header
  for split in ("train", "test"):
    images_key, labels_key = f"{split}_images", f"{split}_labels"
    num_images = headers[images_key].shape[0]
    num_labels = headers[labels_key].shape[0]
    if num_images != num_labels:
      raise IdxFormatError(
          f"{paths[images_key]}: {num_images} images but {paths[labels_key]} "
          f"has {num_labels} labels")
  return paths


def check_idx_directory(directory: str) -> None:
  """Cheaply checks an MNIST-style IDX directory, reading headers only."""
  _checked_split_paths(directory)


def _load_labels(path: str) -> np.ndarray:
  labels = read_idx(path)
  out_of_range = np.flatnonzero(labels >= NUM_CLASSES)  # uint8: never < 0.
  if out_of_range.size:
    index = int(out_of_range[0])
    raise IdxFormatError(
        f"{path}: label {int(labels[index])} at index {index} is outside "
        f"0..{NUM_CLASSES - 1} ({out_of_range.size} such labels)")
  return labels.astype(np.int64)


def load_idx_directory(
    directory: str,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """Loads ((train_images, train_labels), (test_images, test_labels)).

  Images are uint8 [N, 28, 28], labels int64 [N] in 0..9. Everything
  check_idx_directory checks is checked first, so a bad directory fails before
  the large files are read; read_idx then validates each file's full length.
  """
  paths = _checked_split_paths(directory)
  # read_idx returns exactly the header's shape, so the counts checked above
  # still hold for the arrays.
  return (
      (read_idx(paths["train_images"]), _load_labels(paths["train_labels"])),
      (read_idx(paths["test_images"]), _load_labels(paths["test_labels"])),
  )
