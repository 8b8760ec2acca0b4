"""Tests for ppgn_tf.plots: grid arithmetic and the PNG/GIF writers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ppgn_tf import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GIF_MAGIC = (b"GIF87a", b"GIF89a")
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk and its fixed CRC
H = W = 28


def _images(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).random((n, H, W, 1), dtype=np.float32)


def _constant_images(n: int) -> np.ndarray:
  """Image i is filled with a value unique to i and different from 0.5."""
  values = np.linspace(0.0, 1.0, n + 2)[1:-1]
  values = np.where(np.isclose(values, 0.5), 0.49, values)
  return np.broadcast_to(values[:, None, None, None], (n, H, W, 1)).astype(np.float32)


def _read_png(path) -> Image.Image:
  with open(path, "rb") as f:
    data = f.read()
  assert data.startswith(PNG_MAGIC)
  assert data.endswith(PNG_END)
  with Image.open(path) as im:
    im.verify()
  im = Image.open(path)
  im.load()
  return im


def _no_temp_files(directory) -> None:
  leftovers = [n for n in os.listdir(directory) if n.startswith(".tmp-")]  # files.write_atomically's temporaries.
  assert leftovers == []


@pytest.fixture(autouse=True)
def _figures_closed():
  yield
  assert plots.plt.get_fignums() == []


# --- image_grid ---------------------------------------------------------------

@pytest.mark.parametrize("n, nrow, shape", [
    (10, 5, (2 * H + 1, 5 * W + 4)),
    (10, None, (3 * H + 2, 4 * W + 3)),  # ceil(sqrt(10)) = 4 per row
    (9, None, (3 * H + 2, 3 * W + 2)),
    (1, None, (H, W)),
    (7, 3, (3 * H + 2, 3 * W + 2)),
    (3, 8, (H, 3 * W + 2)),  # a row never gets wider than the batch
])
def test_grid_shape(n, nrow, shape):
  grid = plots.image_grid(_images(n), nrow)
  assert grid.shape == shape
  assert grid.dtype == np.float32


def test_grid_accepts_images_without_channel_axis():
  images = _images(6)
  np.testing.assert_array_equal(plots.image_grid(images, 3),
                                plots.image_grid(images[..., 0], 3))


def test_grid_separators_and_empty_cells_are_grey():
  grid = plots.image_grid(_constant_images(7), nrow=3)
  for k in (1, 2):
    assert np.all(grid[k * (H + 1) - 1, :] == 0.5)
    assert np.all(grid[:, k * (W + 1) - 1] == 0.5)
  # Cells 7 and 8 of the 3x3 grid hold no image.
  assert np.all(grid[2 * (H + 1):, (W + 1):] == 0.5)
  # No separator pixel leaks into a tile.
  assert not np.any(grid[:H, :W] == 0.5)


def test_grid_places_each_image_in_its_tile():
  images = _images(10, seed=3)
  grid = plots.image_grid(images, nrow=4)
  for i in range(10):
    r, c = divmod(i, 4)
    tile = grid[r * (H + 1):r * (H + 1) + H, c * (W + 1):c * (W + 1) + W]
    np.testing.assert_array_equal(tile, images[i, ..., 0])


def test_grid_known_pixel():
  images = np.zeros((4, H, W, 1), np.float32)
  images[3, 5, 7, 0] = 1.0
  grid = plots.image_grid(images, nrow=2)
  assert grid[(H + 1) + 5, (W + 1) + 7] == 1.0
  assert grid.sum() == 1.0 + 0.5 * (grid == 0.5).sum()


def test_grid_clips_overshoot():
  images = np.full((1, H, W, 1), 1.2, np.float32)
  images[0, 0, 0, 0] = -0.1
  grid = plots.image_grid(images)
  assert grid.max() == 1.0 and grid.min() == 0.0


@pytest.mark.parametrize("images, message", [
    (np.zeros((0, H, W, 1), np.float32), "empty"),
    (np.full((2, H, W, 1), np.nan, np.float32), "finite"),
    (np.full((2, H, W, 1), np.inf, np.float32), "finite"),
    (np.zeros((2, H, W, 3), np.float32), "shape"),
    (np.zeros((H, W), np.float32), "shape"),
    (np.zeros((2, H, W, 1), np.uint8), "dtype"),
])
def test_grid_rejects_bad_images(images, message):
  with pytest.raises(ValueError, match=message):
    plots.image_grid(images)


@pytest.mark.parametrize("nrow", [0, -1, 2.5, True])
def test_grid_rejects_bad_nrow(nrow):
  with pytest.raises(ValueError, match="nrow"):
    plots.image_grid(_images(4), nrow)


# --- PNG writers ----------------------------------------------------------------

def test_save_image_grid_writes_png_and_creates_dirs(tmp_path):
  path = tmp_path / "a" / "b" / "grid.png"
  plots.save_image_grid(_images(20), str(path), nrow=10,
                        row_labels=["class 0", "class 1"], title="samples")
  im = _read_png(path)
  # At least as large as the grid shown 3x (labels and title only add to it).
  assert im.width >= 3 * (10 * W + 9) * 0.95 and im.height >= 3 * (2 * H + 1) * 0.95
  _no_temp_files(path.parent)


def test_save_image_grid_rejects_wrong_label_count(tmp_path):
  path = tmp_path / "grid.png"
  with pytest.raises(ValueError, match="row_labels"):
    plots.save_image_grid(_images(20), str(path), nrow=10, row_labels=["only one"])
  assert not path.exists()
  _no_temp_files(tmp_path)


def test_save_reconstruction_grid_interleaves_pairs(tmp_path, monkeypatch):
  seen = {}
  real_grid = plots.image_grid

  def spy(images, nrow=None):
    seen["images"], seen["nrow"] = np.asarray(images), nrow
    return real_grid(images, nrow)

  monkeypatch.setattr(plots, "image_grid", spy)
  inputs, outputs = _images(10, seed=1), _images(10, seed=2)
  path = tmp_path / "recon.png"
  plots.save_reconstruction_grid(inputs, outputs, str(path), title="step 100")
  _read_png(path)
  assert seen["nrow"] == 16  # 8 pairs per row
  np.testing.assert_array_equal(seen["images"][0::2], inputs[..., 0])
  np.testing.assert_array_equal(seen["images"][1::2], outputs[..., 0])
  _no_temp_files(tmp_path)


def test_save_reconstruction_grid_rejects_mismatched_n(tmp_path):
  path = tmp_path / "recon.png"
  with pytest.raises(ValueError, match="differ"):
    plots.save_reconstruction_grid(_images(8), _images(7), str(path))
  assert not path.exists()


def test_save_curves_writes_png_skipping_nan(tmp_path, monkeypatch):
  import matplotlib.axes
  drawn = {}
  plot = matplotlib.axes.Axes.plot

  def recording_plot(ax, steps, values, label=None, **kwargs):
    drawn[label] = (list(steps), list(values))
    return plot(ax, steps, values, label=label, **kwargs)

  monkeypatch.setattr(matplotlib.axes.Axes, "plot", recording_plot)
  path = tmp_path / "w.png"
  curves = {
      "conv1": ([0, 100, 200, 300], [1.0, float("nan"), 0.5, 0.25]),
      "fc1": (np.arange(4) * 100, np.array([2.0, 1.5, 1.0, 0.8])),
      "all nan": ([0, 100], [float("nan"), float("nan")]),
      "inf step": ([0, float("inf")], [3.0, 4.0]),
  }
  plots.save_curves(curves, str(path), title="Wasserstein estimates",
                    ylabel="W estimate")
  # The NaN point and the infinite step are left out, the rest of their curves drawn; a curve without a finite
  # point is not drawn at all.
  assert drawn == {"conv1": ([0, 200, 300], [1.0, 0.5, 0.25]), "fc1": ([0, 100, 200, 300], [2.0, 1.5, 1.0, 0.8]),
                   "inf step": ([0], [3.0])}
  _read_png(path)
  _no_temp_files(tmp_path)


@pytest.mark.parametrize("curves", [
    {},
    {"a": ([], [])},
    {"a": ([0, 1], [float("nan"), float("nan")])},
])
def test_save_curves_raises_when_nothing_to_plot(tmp_path, curves):
  path = tmp_path / "c.png"
  with pytest.raises(ValueError, match="nothing to plot"):
    plots.save_curves(curves, str(path))
  assert not path.exists()


def test_save_curves_rejects_length_mismatch(tmp_path):
  with pytest.raises(ValueError, match="steps"):
    plots.save_curves({"a": ([0, 1, 2], [1.0, 2.0])}, str(tmp_path / "c.png"))


def test_save_band_curves_draws_the_band(tmp_path):
  """A band between low and high is drawn in the line's colour: the picture has more coloured pixels with it."""
  steps = np.arange(20) * 10
  mean = np.linspace(2.0, 0.5, 20)
  with_band, without = tmp_path / "band.png", tmp_path / "line.png"
  plots.save_band_curves({"fc1": (steps, mean, mean - 0.5, mean + 0.5)}, str(with_band), title="W", ylabel="W")
  plots.save_band_curves({"fc1": (steps, mean, None, None)}, str(without))
  coloured = lambda path: int(np.sum(np.ptp(np.asarray(_read_png(path).convert("RGB"), int), axis=-1) > 30))
  assert coloured(with_band) > 3 * coloured(without)
  _no_temp_files(tmp_path)
  with pytest.raises(ValueError, match="nothing to plot"):
    plots.save_band_curves({"fc1": ([], [], None, None)}, str(tmp_path / "empty.png"))
  assert not (tmp_path / "empty.png").exists()


def test_existing_png_is_replaced_whole(tmp_path):
  path = tmp_path / "grid.png"
  junk = b"\xff" * 2_000_000  # far larger than the PNG: a leftover tail would show
  path.write_bytes(junk)
  plots.save_image_grid(_images(4), str(path))
  data = path.read_bytes()
  assert len(data) < len(junk)
  _read_png(path)
  assert sorted(os.listdir(tmp_path)) == ["grid.png"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
  path = tmp_path / "grid.png"
  path.write_bytes(b"old")

  def broken_savefig(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(plots.plt.Figure, "savefig", broken_savefig)
  with pytest.raises(OSError, match="disk full"):
    plots.save_image_grid(_images(4), str(path))
  assert path.read_bytes() == b"old"
  assert sorted(os.listdir(tmp_path)) == ["grid.png"]


# --- GIF ------------------------------------------------------------------------

def test_save_animation_writes_gif_with_all_frames(tmp_path):
  frames = [_constant_images(6) * (k + 1) / 5 for k in range(5)]
  path = tmp_path / "anim" / "chains.gif"
  plots.save_animation(frames, str(path), nrow=3, duration_ms=80)
  assert path.read_bytes()[:6] in GIF_MAGIC
  with Image.open(path) as im:
    assert im.n_frames == 5
    assert im.size == (3 * (3 * W + 2), 3 * (2 * H + 1))
    assert im.info.get("loop") == 0
    # Frame 0 matches its grid, upscaled by nearest neighbour.
    first = np.asarray(im.convert("L"))
  grid = np.round(plots.image_grid(frames[0], 3) * 255).astype(np.uint8)
  np.testing.assert_array_equal(first[::3, ::3], grid)
  np.testing.assert_array_equal(first[1::3, 2::3], grid)
  _no_temp_files(path.parent)


def test_save_animation_replaces_existing_file(tmp_path):
  path = tmp_path / "chains.gif"
  path.write_bytes(b"\x00" * 1_000_000)
  plots.save_animation([_images(4, seed=k) for k in range(3)], str(path))
  with Image.open(path) as im:
    assert im.format == "GIF" and im.n_frames == 3
  assert path.stat().st_size < 1_000_000
  assert sorted(os.listdir(tmp_path)) == ["chains.gif"]


@pytest.mark.parametrize("frames, kwargs", [
    ([], {}),
    ([np.zeros((4, H, W, 1), np.float32), np.zeros((5, H, W, 1), np.float32)], {}),
    ([np.zeros((4, H, W, 1), np.float32)], {"duration_ms": 0}),
])
def test_save_animation_rejects_bad_input(tmp_path, frames, kwargs):
  path = tmp_path / "a.gif"
  with pytest.raises(ValueError):
    plots.save_animation(frames, str(path), **kwargs)
  assert not path.exists()
  _no_temp_files(tmp_path)
