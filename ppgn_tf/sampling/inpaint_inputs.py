"""In-painting inputs: an image with pixels in [0, 1] and a mask of known pixels, read from the flags' values
(files or named masks) and checked. No TensorFlow here, so the sample program checks them before TensorFlow
starts; a test image of a data set (test:N) is loaded later, with the data set, by `sample_lib`."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image

from ppgn_tf.data import sources
from ppgn_tf.data.idx_format import IMAGE_SHAPE
from ppgn_tf.sampling import sampler_config

TEST_PREFIX = "test:"  # --inpaint_image=test:N: test image N of the run's data set.


def check_inpaint_images(images, rows: int) -> np.ndarray:
  """images [rows, 28, 28, 1] with pixels in [0, 1]; raises ValueError naming the input."""
  images = np.asarray(images, np.float32)
  if images.shape != (rows, *IMAGE_SHAPE):
    raise ValueError(f"inpaint images: expected shape {[rows, *IMAGE_SHAPE]}, got {list(images.shape)}")
  if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
    raise ValueError("inpaint images: pixels must be in [0, 1]")
  return images


def check_inpaint_mask(mask, images_shape: tuple) -> np.ndarray:
  """A {0, 1} mask of `images_shape` (one [28, 28, 1] mask is repeated for every image); raises ValueError."""
  mask = np.asarray(mask, np.float32)
  if mask.shape == IMAGE_SHAPE:
    mask = np.broadcast_to(mask, images_shape)
  if mask.shape != tuple(images_shape):
    raise ValueError(f"inpaint mask: expected shape {list(IMAGE_SHAPE)} or {list(images_shape)}, "
                     f"got {list(mask.shape)}")
  if not np.all((mask == 0) | (mask == 1)):
    raise ValueError("inpaint mask: values must be 0 (fill in) or 1 (known)")
  return np.ascontiguousarray(mask)


def check_inpaint_inputs(images, mask, rows: int) -> tuple[np.ndarray, np.ndarray]:
  """images [N, 28, 28, 1] in [0, 1] and a {0, 1} mask of the same shape (or one [28, 28, 1] mask for all);
  raises ValueError naming the input."""
  images = check_inpaint_images(images, rows)
  return images, check_inpaint_mask(mask, images.shape)


def read_picture(path: str, what: str) -> np.ndarray:
  """A 28x28 picture from a .png (pixels / 255) or .npy file, as float32 [28, 28, 1]."""
  if not os.path.isfile(path):
    raise ValueError(f"{what}={path}: no such file")
  if path.endswith(".npy"):
    values = np.load(path).astype(np.float32)
  else:
    try:
      values = np.asarray(Image.open(path).convert("L"), np.float32) / 255.0
    except OSError as e:
      raise ValueError(f"{what}={path}: not an image ({e})") from None
  if values.size != np.prod(IMAGE_SHAPE):
    raise ValueError(f"{what}={path}: expected {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} pixels, got shape "
                     f"{list(values.shape)}")
  return values.reshape(IMAGE_SHAPE)


@dataclasses.dataclass(frozen=True)
class InpaintInputs:
  """The in-painting inputs the flags name, read and checked: a mask, and an image or which test image."""
  source: str  # The --inpaint_image value, for messages.
  mask: np.ndarray  # [28, 28, 1] of 0 (fill in) and 1 (known).
  image: np.ndarray | None = None  # [28, 28, 1], pixels in [0, 1]; None: test image `test_index` of `dataset`.
  test_index: int | None = None
  dataset: str | None = None
  data_dir: str | None = None


def read_inpaint_inputs(image_arg: str, mask_arg: str, dataset: str | None,
                        data_dir: str | None = None) -> InpaintInputs:
  """The flags' --inpaint_image (a .png, a .npy or test:N of `dataset`) and --inpaint_mask (a named mask or a
  file); raises ValueError with one line."""
  image = test_index = None
  if image_arg.startswith(TEST_PREFIX):
    if not dataset:
      raise ValueError(f"--inpaint_image={image_arg}: the data set is unknown here; give a file")
    try:
      test_index = int(image_arg[len(TEST_PREFIX):])
    except ValueError:
      raise ValueError(f"--inpaint_image={image_arg}: expected test:N with a whole number N") from None
    sources.check_source(dataset)  # Loaded later, with TensorFlow running: a bad source is named now.
  else:
    image = check_inpaint_images(read_picture(image_arg, "--inpaint_image")[None], 1)[0]
  if not mask_arg.endswith((".png", ".npy")):
    mask = sampler_config.named_mask(mask_arg)  # Raises for an unknown name.
  else:
    mask = read_picture(mask_arg, "--inpaint_mask")
  mask = check_inpaint_mask(mask, IMAGE_SHAPE)
  return InpaintInputs(source=image_arg, mask=mask, image=image, test_index=test_index, dataset=dataset,
                       data_dir=data_dir)
