"""Tests for ppgn_tf.idx_format: IDX reading/writing and MNIST directory checks."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from ppgn_tf.data import idx_format
from ppgn_tf.data.idx_format import (
    MNIST_FILES,
    IdxFormatError,
    check_idx_directory,
    find_idx_file,
    load_idx_directory,
    read_idx,
    write_idx,
)

RNG_SEED = 1234
NUM_TRAIN = 5
NUM_TEST = 3


def _header(type_code: int, dims: tuple[int, ...]) -> bytes:
  return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def _images(n: int, seed: int = RNG_SEED, size: int = 28) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def _labels(n: int, seed: int = RNG_SEED) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 10, n, dtype=np.uint8)


def _make_mnist_dir(directory, gz_keys=(), arrays=None) -> dict[str, str]:
  """Writes the four MNIST files; keys in `gz_keys` get a .gz suffix.

  `arrays` overrides the content of individual files. Returns the paths.
  """
  contents = {
      "train_images": _images(NUM_TRAIN, seed=1),
      "train_labels": _labels(NUM_TRAIN, seed=2),
      "test_images": _images(NUM_TEST, seed=3),
      "test_labels": _labels(NUM_TEST, seed=4),
  }
  contents.update(arrays or {})
  paths = {}
  for key, stem in MNIST_FILES.items():
    path = os.path.join(str(directory), stem + (".gz" if key in gz_keys else ""))
    write_idx(path, contents[key])
    paths[key] = path
  return paths


def _raises(path, *words, match_call):
  """Runs match_call(), expects IdxFormatError naming `path` and all `words`."""
  with pytest.raises(IdxFormatError) as info:
    match_call()
  message = str(info.value)
  assert str(path) in message
  for word in words:
    assert word in message, f"{word!r} not in {message!r}"
  assert "\n" not in message
  return message


# --- write_idx / read_idx round trips -------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_mnist_shaped_arrays(tmp_path, suffix):
  images, labels = _images(5), _labels(5)
  images_path = tmp_path / f"images{suffix}"
  labels_path = tmp_path / f"labels{suffix}"
  write_idx(str(images_path), images)
  write_idx(str(labels_path), labels)

  images_back, labels_back = read_idx(str(images_path)), read_idx(str(labels_path))

  assert images_back.dtype == np.uint8 and images_back.shape == (5, 28, 28)
  assert labels_back.dtype == np.uint8 and labels_back.shape == (5,)
  np.testing.assert_array_equal(images_back, images)
  np.testing.assert_array_equal(labels_back, labels)
  assert images_back.flags.writeable


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_other_dtypes_native_byte_order(tmp_path, dtype, suffix):
  array = (np.arange(-12, 12).reshape(2, 3, 4) * 3.5 if np.dtype(dtype).kind == "f"
           else np.arange(-12, 12).reshape(2, 3, 4) * 5).astype(dtype)
  path = str(tmp_path / f"a{suffix}")
  write_idx(path, array)

  back = read_idx(path)

  assert back.dtype == np.dtype(dtype) and back.dtype.isnative
  np.testing.assert_array_equal(back, array)


def test_header_is_byte_exact_and_big_endian(tmp_path):
  path = tmp_path / "tiny"
  array = np.arange(2 * 1 * 258, dtype=np.uint16).astype(np.uint8).reshape(2, 1, 258)
  write_idx(str(path), array)

  raw = path.read_bytes()

  assert raw[:4] == b"\x00\x00\x08\x03"
  # 258 == 0x0102 shows the byte order of the dimensions.
  assert raw[4:16] == b"\x00\x00\x00\x02" b"\x00\x00\x00\x01" b"\x00\x00\x01\x02"
  assert raw[16:] == array.tobytes()
  assert len(raw) == 16 + 516


def test_multibyte_data_is_written_big_endian(tmp_path):
  path = tmp_path / "shorts"
  write_idx(str(path), np.array([1, -2], dtype=np.int16))
  assert path.read_bytes() == b"\x00\x00\x0b\x01\x00\x00\x00\x02\x00\x01\xff\xfe"
  # A big-endian input array is written (and read back) the same way.
  write_idx(str(path), np.array([1, -2], dtype=">i2"))
  assert path.read_bytes() == b"\x00\x00\x0b\x01\x00\x00\x00\x02\x00\x01\xff\xfe"
  np.testing.assert_array_equal(read_idx(str(path)), [1, -2])


def test_gz_path_writes_gzip_of_the_plain_bytes(tmp_path):
  array = _labels(7)
  write_idx(str(tmp_path / "plain"), array)
  write_idx(str(tmp_path / "packed.gz"), array)

  packed = (tmp_path / "packed.gz").read_bytes()

  assert packed[:2] == b"\x1f\x8b"
  assert gzip.decompress(packed) == (tmp_path / "plain").read_bytes()


def test_write_replaces_existing_file_and_leaves_no_temp_files(tmp_path):
  path = str(tmp_path / "labels")
  write_idx(path, np.array([1, 2, 3], dtype=np.uint8))
  write_idx(path, np.array([9, 8], dtype=np.uint8))

  np.testing.assert_array_equal(read_idx(path), [9, 8])
  assert os.listdir(tmp_path) == ["labels"]


def test_write_rejects_unsupported_dtype_without_creating_a_file(tmp_path):
  path = tmp_path / "labels"
  _raises(path, "int64", match_call=lambda: write_idx(str(path), np.arange(3)))
  assert os.listdir(tmp_path) == []


# --- read_idx errors --------------------------------------------------------------


def test_read_missing_file(tmp_path):
  path = tmp_path / "absent"
  _raises(path, "file not found", match_call=lambda: read_idx(str(path)))


def test_read_bad_magic_number(tmp_path):
  path = tmp_path / "bad"
  path.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
  _raises(path, "bad magic number 0x12340801", match_call=lambda: read_idx(str(path)))


def test_read_all_zero_file_is_bad_magic(tmp_path):
  path = tmp_path / "zeros"
  path.write_bytes(bytes(64))
  _raises(path, "bad magic number 0x00000000", match_call=lambda: read_idx(str(path)))


def test_read_gzip_without_gz_suffix_hints_at_it(tmp_path):
  path = tmp_path / "labels"
  path.write_bytes(gzip.compress(_header(0x08, (1,)) + b"\x05"))
  _raises(path, "bad magic number", "gzip", match_call=lambda: read_idx(str(path)))


def test_read_unsupported_type_code(tmp_path):
  path = tmp_path / "odd"
  path.write_bytes(_header(0x07, (2,)) + b"\x01\x02")
  _raises(path, "unsupported IDX type code 0x07", match_call=lambda: read_idx(str(path)))


def test_read_truncated_data(tmp_path):
  path = tmp_path / "images"
  path.write_bytes(_header(0x08, (5, 28, 28)) + bytes(1000))
  _raises(path, "truncated", "3920", "1000", match_call=lambda: read_idx(str(path)))


def test_read_truncated_header(tmp_path):
  path = tmp_path / "images"
  path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05\x00")
  _raises(path, "truncated", "3 dimensions", match_call=lambda: read_idx(str(path)))


def test_read_file_shorter_than_magic(tmp_path):
  path = tmp_path / "empty"
  path.write_bytes(b"")
  _raises(path, "truncated", "0 bytes", match_call=lambda: read_idx(str(path)))


def test_read_trailing_bytes(tmp_path):
  path = tmp_path / "labels"
  path.write_bytes(_header(0x08, (3,)) + b"\x01\x02\x03" + b"xyz")
  _raises(path, "3 trailing bytes", match_call=lambda: read_idx(str(path)))


def test_read_truncated_multibyte_data(tmp_path):
  path = tmp_path / "floats"
  # 2 float64 need 16 bytes; 12 are present.
  path.write_bytes(_header(0x0E, (2,)) + bytes(12))
  _raises(path, "truncated", "16", "12", match_call=lambda: read_idx(str(path)))


def test_read_corrupt_gzip(tmp_path):
  path = tmp_path / "labels.gz"
  path.write_bytes(b"this is not gzip data")
  _raises(path, "not a valid gzip file", match_call=lambda: read_idx(str(path)))


def test_read_cut_off_gzip_stream(tmp_path):
  path = tmp_path / "images.gz"
  write_idx(str(path), _images(5))
  packed = path.read_bytes()
  path.write_bytes(packed[: len(packed) // 2])
  _raises(path, "not a valid gzip file", match_call=lambda: read_idx(str(path)))


def test_truncated_data_inside_gzip_is_reported_as_truncated(tmp_path):
  path = tmp_path / "images.gz"
  path.write_bytes(gzip.compress(_header(0x08, (5, 28, 28)) + bytes(1000)))
  _raises(path, "truncated", "3920", "1000", match_call=lambda: read_idx(str(path)))


# --- find_idx_file ----------------------------------------------------------------


def test_find_prefers_plain_over_gz(tmp_path):
  stem = MNIST_FILES["train_labels"]
  write_idx(str(tmp_path / (stem + ".gz")), _labels(2))
  assert find_idx_file(str(tmp_path), stem) == str(tmp_path / (stem + ".gz"))
  write_idx(str(tmp_path / stem), _labels(2))
  assert find_idx_file(str(tmp_path), stem) == str(tmp_path / stem)


def test_find_missing_names_both_candidates(tmp_path):
  stem = MNIST_FILES["test_images"]
  _raises(tmp_path / stem, "file not found", f"{stem}.gz",
          match_call=lambda: find_idx_file(str(tmp_path), stem))


# --- load_idx_directory -----------------------------------------------------------


def test_load_directory_mixing_plain_and_gz(tmp_path):
  images_train, labels_train = _images(NUM_TRAIN, seed=10), _labels(NUM_TRAIN, seed=11)
  images_test, labels_test = _images(NUM_TEST, seed=12), _labels(NUM_TEST, seed=13)
  _make_mnist_dir(tmp_path, gz_keys={"train_images", "test_labels"}, arrays={
      "train_images": images_train, "train_labels": labels_train,
      "test_images": images_test, "test_labels": labels_test})

  check_idx_directory(str(tmp_path))
  (xtr, ytr), (xte, yte) = load_idx_directory(str(tmp_path))

  assert xtr.dtype == np.uint8 and xtr.shape == (NUM_TRAIN, 28, 28)
  assert xte.dtype == np.uint8 and xte.shape == (NUM_TEST, 28, 28)
  assert ytr.dtype == np.int64 and ytr.shape == (NUM_TRAIN,)
  assert yte.dtype == np.int64 and yte.shape == (NUM_TEST,)
  np.testing.assert_array_equal(xtr, images_train)
  np.testing.assert_array_equal(ytr, labels_train)
  np.testing.assert_array_equal(xte, images_test)
  np.testing.assert_array_equal(yte, labels_test)


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_missing(tmp_path, function):
  missing = tmp_path / "nope"
  _raises(missing, "no such directory", match_call=lambda: function(str(missing)))


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_is_a_file(tmp_path, function):
  not_dir = tmp_path / "file"
  not_dir.write_bytes(b"")
  _raises(not_dir, "not a directory", match_call=lambda: function(str(not_dir)))


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_missing_file(tmp_path, function):
  paths = _make_mnist_dir(tmp_path)
  os.remove(paths["test_labels"])
  _raises(paths["test_labels"], "file not found", ".gz",
          match_call=lambda: function(str(tmp_path)))


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_bad_magic(tmp_path, function):
  paths = _make_mnist_dir(tmp_path)
  with open(paths["train_labels"], "r+b") as f:
    f.write(b"\xde\xad")
  _raises(paths["train_labels"], "bad magic number 0xDEAD0801",
          match_call=lambda: function(str(tmp_path)))


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_truncated_plain_file(tmp_path, function):
  paths = _make_mnist_dir(tmp_path)
  with open(paths["test_images"], "r+b") as f:
    f.truncate(16 + 100)
  _raises(paths["test_images"], "truncated", str(NUM_TEST * 784), "100",
          match_call=lambda: function(str(tmp_path)))


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_count_mismatch(tmp_path, function):
  paths = _make_mnist_dir(tmp_path, arrays={"train_labels": _labels(NUM_TRAIN - 1)})
  message = _raises(paths["train_images"], f"{NUM_TRAIN} images", paths["train_labels"],
                    f"{NUM_TRAIN - 1} labels", match_call=lambda: function(str(tmp_path)))
  assert message.startswith(paths["train_images"])


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_wrong_image_size(tmp_path, function):
  paths = _make_mnist_dir(tmp_path, gz_keys={"test_images"},
                          arrays={"test_images": _images(NUM_TEST, size=32)})
  _raises(paths["test_images"], "32x32", "28x28",
          match_call=lambda: function(str(tmp_path)))


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_images_not_ubyte(tmp_path, function):
  paths = _make_mnist_dir(
      tmp_path, arrays={"train_images": _images(NUM_TRAIN).astype(np.float32)})
  _raises(paths["train_images"], "0x0D", match_call=lambda: function(str(tmp_path)))


@pytest.mark.parametrize("function", [check_idx_directory, load_idx_directory])
def test_directory_labels_not_1d(tmp_path, function):
  paths = _make_mnist_dir(
      tmp_path, arrays={"test_labels": _labels(NUM_TEST).reshape(NUM_TEST, 1)})
  _raises(paths["test_labels"], "1-D", match_call=lambda: function(str(tmp_path)))


def test_load_label_out_of_range(tmp_path):
  labels = np.array([0, 9, 10, 3, 200], dtype=np.uint8)
  paths = _make_mnist_dir(tmp_path, gz_keys={"train_labels"}, arrays={"train_labels": labels})
  # Label values are data, which the cheap check does not read.
  check_idx_directory(str(tmp_path))
  _raises(paths["train_labels"], "label 10", "index 2", "0..9",
          match_call=lambda: load_idx_directory(str(tmp_path)))


def test_load_reports_corrupt_gzip_data_the_check_skips(tmp_path):
  # A .gz whose header decompresses fine but whose stream breaks later: the
  # cheap check reads only the header, the full load must catch it.
  paths = _make_mnist_dir(tmp_path, gz_keys={"train_images"},
                          arrays={"train_images": _images(40)},
                          )
  write_idx(paths["train_labels"], _labels(40))
  with open(paths["train_images"], "rb") as f:
    packed = f.read()
  with open(paths["train_images"], "wb") as f:
    f.write(packed[: len(packed) // 2])

  check_idx_directory(str(tmp_path))
  _raises(paths["train_images"], "not a valid gzip file",
          match_call=lambda: load_idx_directory(str(tmp_path)))


@pytest.mark.parametrize("corruption", ["missing_file", "bad_magic", "count_mismatch"])
def test_check_finds_problems_without_reading_data(tmp_path, monkeypatch, corruption):
  paths = _make_mnist_dir(tmp_path, gz_keys={"test_images"})
  if corruption == "missing_file":
    os.remove(paths["train_images"])
    expected_path, word = paths["train_images"], "file not found"
  elif corruption == "bad_magic":
    with open(paths["test_labels"], "r+b") as f:
      f.write(b"\x01")
    expected_path, word = paths["test_labels"], "bad magic number"
  else:
    write_idx(paths["test_images"], _images(NUM_TEST + 1))
    expected_path, word = paths["test_images"], f"{NUM_TEST + 1} images"

  def no_full_reads(path):
    raise AssertionError(f"check_idx_directory read all of {path}")

  monkeypatch.setattr(idx_format, "read_idx", no_full_reads)
  _raises(expected_path, word, match_call=lambda: check_idx_directory(str(tmp_path)))
