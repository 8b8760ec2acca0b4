"""Pictures for people: image grids, reconstruction pairs, curves, GIFs.

Only numpy, matplotlib (Agg backend) and PIL; no TensorFlow, so plots can be
drawn from saved arrays without loading a model. Every writer creates the
parent directory and writes a temporary file beside `path` that then atomically
replaces it, so a viewer never sees a half-written picture.
"""

from __future__ import annotations

import contextlib
import math

import matplotlib

# Set before pyplot is imported: training runs headless and must never try to
# open a window.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ppgn_tf import files  # noqa: E402

SEPARATOR = 0.5  # grey: distinct from MNIST's black background and white ink
PAIRS_PER_ROW = 8
RECONSTRUCTION_CAPTION = "left: input x, right: G(E(x))"
# Screen pixels per image pixel: 28x28 digits are too small to judge at 1:1.
_SCALE = 3
_DPI = 100


def _as_images(images, what: str = "images") -> np.ndarray:
  """[N, H, W, 1] or [N, H, W] floats in [0, 1] as a float32 [N, H, W] array."""
  array = np.asarray(images)
  if array.ndim == 4 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim != 3:
    raise ValueError(
        f"{what}: expected shape [N, H, W, 1] or [N, H, W], got {array.shape}")
  if array.shape[0] == 0:
    raise ValueError(f"{what}: empty batch")
  if not (np.issubdtype(array.dtype, np.floating) or array.dtype == bool):
    # uint8 pixels would all clip to white; make the caller scale them.
    raise ValueError(
        f"{what}: expected floats in [0, 1], got dtype {array.dtype} "
        "(divide uint8 pixels by 255)")
  array = array.astype(np.float32)
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{what}: values are not all finite")
  # Denormalised network outputs may overshoot slightly; show them saturated.
  return np.clip(array, 0.0, 1.0)


def _columns(n: int, nrow) -> int:
  if nrow is None:
    return max(1, math.ceil(math.sqrt(n)))
  if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
    raise ValueError(f"nrow must be a positive integer, got {nrow!r}")
  # A row wider than the batch would only add empty tiles.
  return min(int(nrow), n)


def image_grid(images, nrow: int | None = None) -> np.ndarray:
  """Tiles images into one 2-D float array, `nrow` images per row.

  `nrow` defaults to ceil(sqrt(N)). Tiles are separated by 1-pixel lines of
  value 0.5 (no outer border); empty cells of the last row are 0.5 too.
  """
  array = _as_images(images)
  n, height, width = array.shape
  columns = _columns(n, nrow)
  rows = math.ceil(n / columns)
  grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1),
                 SEPARATOR, dtype=np.float32)
  for i, image in enumerate(array):
    top = (i // columns) * (height + 1)
    left = (i % columns) * (width + 1)
    grid[top:top + height, left:left + width] = image
  return grid


@contextlib.contextmanager
def _saved_figure(fig, path: str):
  """Draw on `fig` inside the block; at its end `fig` is written as PNG to `path` atomically. The figure is
  closed either way, so a failed drawing leaks no figure."""
  try:
    yield fig
    # format is explicit: the temp file's name does not end in ".png".
    files.atomic_write(path, lambda out: fig.savefig(
        out, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.1))
  finally:
    plt.close(fig)


def _grid_figure(grid: np.ndarray):
  """A figure showing `grid` at _SCALE screen pixels per pixel, without ticks."""
  height, width = grid.shape
  fig = plt.figure(figsize=(width * _SCALE / _DPI, height * _SCALE / _DPI), dpi=_DPI)
  ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
  ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  return fig, ax


def save_image_grid(images, path: str, nrow: int | None = None,
                    row_labels=None, title: str | None = None) -> None:
  """Writes image_grid(images, nrow) as a grayscale PNG.

  `row_labels` (one str per grid row, e.g. the class of each row of a
  class-conditional sample grid) are drawn left of the rows.
  """
  array = _as_images(images)
  grid = image_grid(array, nrow)
  n, height, _ = array.shape
  rows = math.ceil(n / _columns(n, nrow))
  if row_labels is not None:
    row_labels = [str(label) for label in row_labels]
    if len(row_labels) != rows:
      raise ValueError(
          f"row_labels: got {len(row_labels)} labels for a grid of {rows} rows")
  fig, ax = _grid_figure(grid)
  with _saved_figure(fig, path):
    for r, label in enumerate(row_labels or ()):
      ax.text(-2, r * (height + 1) + (height - 1) / 2, label,
              ha="right", va="center", fontsize=9)
    if title:
      ax.set_title(title)


def save_reconstruction_grid(inputs, reconstructions, path: str,
                             title: str | None = None) -> None:
  """Writes inputs and reconstructions as alternating columns, 8 pairs per row."""
  x = _as_images(inputs, "inputs")
  y = _as_images(reconstructions, "reconstructions")
  if x.shape != y.shape:
    raise ValueError(
        f"inputs {x.shape} and reconstructions {y.shape} differ in shape")
  # Interleave so that pair i lands in tiles 2i (input) and 2i+1 (output).
  pairs = np.stack([x, y], axis=1).reshape((-1,) + x.shape[1:])
  grid = image_grid(pairs, nrow=2 * PAIRS_PER_ROW)
  fig, ax = _grid_figure(grid)
  with _saved_figure(fig, path):
    ax.set_xlabel(RECONSTRUCTION_CAPTION)
    if title:
      ax.set_title(title)


def save_curves(curves, path: str, title: str | None = None,
                xlabel: str = "generator steps", ylabel: str | None = None) -> None:
  """Writes a PNG with one line per curve; `curves` maps name -> (steps, values).

  Points whose step or value is NaN (or infinite) are skipped; raises
  ValueError if no curve has a point left to draw.
  """
  lines = []
  for name, (steps, values) in dict(curves).items():
    steps = np.asarray(steps, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if steps.shape != values.shape:
      raise ValueError(
          f"curve '{name}': {steps.size} steps but {values.size} values")
    keep = np.isfinite(steps) & np.isfinite(values)
    if keep.any():
      lines.append((str(name), steps[keep], values[keep]))
  if not lines:
    raise ValueError("save_curves: nothing to plot (no curve has a finite point)")
  fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=_DPI)
  with _saved_figure(fig, path):
    for name, steps, values in lines:
      # Markers keep single-point curves (e.g. after one eval) visible.
      ax.plot(steps, values, label=name, marker="." if steps.size < 50 else None)
    _label_axes(ax, xlabel, ylabel, title)


def _label_axes(ax, xlabel: str, ylabel: str | None, title: str | None) -> None:
  """Axis labels, title, a light grid and the legend of a curves plot."""
  ax.set_xlabel(xlabel)
  if ylabel:
    ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend()


def save_band_curves(curves, path: str, title: str | None = None, xlabel: str = "generator steps",
                     ylabel: str | None = None) -> None:
  """Writes a PNG with one line per curve and its shaded band; `curves` maps name -> (steps, mean, low, high),
  low and high None where there is no band (a single seed)."""
  curves = {str(n): c for n, c in dict(curves).items() if len(c[0])}
  if not curves:
    raise ValueError("save_band_curves: nothing to plot (no curve has a point)")
  fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=_DPI)
  with _saved_figure(fig, path):
    for name, (steps, mean, low, high) in curves.items():
      line, = ax.plot(steps, mean, label=name, marker="." if len(steps) < 50 else None)
      if low is not None and high is not None:
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    _label_axes(ax, xlabel, ylabel, title)


def save_interval_rows(rows, path: str, title: str | None = None, xlabel: str | None = None,
                       reference: float | None = None) -> None:
  """Writes a PNG with one row per item and, on it, one marker per series with its interval as a bar.

  `rows`: [(label, note, {series: (mean, low, high)})], low and high None without an interval; `note` is written
  at the row's right (e.g. what the thesis says of it). `reference`: a vertical line (e.g. 1 for a ratio).
  """
  rows = [(str(label), note or "", dict(series)) for label, note, series in rows]
  if not rows or not any(series for _, _, series in rows):
    raise ValueError("save_interval_rows: nothing to plot")
  names = list(dict.fromkeys(name for _, _, series in rows for name in series))
  fig, ax = plt.subplots(figsize=(8.0, 0.55 * len(rows) + 1.4), dpi=_DPI)
  with _saved_figure(fig, path):
    offsets = np.linspace(-0.15, 0.15, len(names)) if len(names) > 1 else [0.0]
    for offset, name in zip(offsets, names):
      ys, means, errors = [], [], [[], []]
      for y, (_, _, series) in enumerate(rows):
        if name in series and series[name][0] is not None:
          mean, low, high = series[name]
          ys.append(y + offset)
          means.append(mean)
          errors[0].append(0.0 if low is None else mean - low)
          errors[1].append(0.0 if high is None else high - mean)
      ax.errorbar(means, ys, xerr=errors, fmt="o", capsize=3, label=name)
    if reference is not None:
      ax.axvline(reference, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows])
    ax.invert_yaxis()
    for y, (_, note, _) in enumerate(rows):
      if note:
        ax.annotate(note, (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    if xlabel:
      ax.set_xlabel(xlabel)
    if title:
      ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def save_setting_bars(names, series, path: str, title: str | None = None) -> None:
  """Writes a PNG of grouped horizontal bars: one group per name (e.g. a sampler setting), one bar per series
  (`series` maps label -> one value per name); a dashed line at 1 marks ratios' parity."""
  names = [str(n) for n in names]
  series = {k: np.asarray(v, np.float64).reshape(-1) for k, v in dict(series).items()}
  for label, values in series.items():
    if values.size != len(names):
      raise ValueError(f"series '{label}': {values.size} values for {len(names)} names")
  if not names or not series:
    raise ValueError("save_setting_bars: nothing to plot")
  height = 0.8 / len(series)
  fig, ax = plt.subplots(figsize=(7.0, 1.0 + 0.45 * len(names) * max(1, len(series) / 2)), dpi=_DPI)
  with _saved_figure(fig, path):
    y = np.arange(len(names))
    for i, (label, values) in enumerate(series.items()):
      ax.barh(y + (i - (len(series) - 1) / 2) * height, values, height, label=label)
    ax.axvline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(y, names)
    ax.invert_yaxis()  # The first name on top, as in the table.
    if title:
      ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")


def save_animation(frames, path: str, nrow: int | None = None,
                   duration_ms: int = 100) -> None:
  """Writes a looping GIF, one frame per image batch (e.g. states of sampling chains).

  Each frame is image_grid(batch, nrow) upscaled x3 (nearest neighbour). Note
  that Pillow merges identical consecutive frames into one longer frame.
  """
  frames = list(frames)
  if not frames:
    raise ValueError("save_animation: no frames")
  if isinstance(duration_ms, bool) or not isinstance(duration_ms, (int, np.integer)) \
      or duration_ms < 1:
    raise ValueError(f"duration_ms must be a positive integer, got {duration_ms!r}")
  grids = [image_grid(frame, nrow) for frame in frames]
  if any(g.shape != grids[0].shape for g in grids):
    raise ValueError("save_animation: frames give grids of different shapes")
  pictures = []
  for grid in grids:
    pixels = np.round(grid * 255.0).astype(np.uint8)
    pixels = np.repeat(np.repeat(pixels, _SCALE, axis=0), _SCALE, axis=1)
    pictures.append(Image.fromarray(pixels))  # 2-D uint8 gives mode "L"
  files.atomic_write(path, lambda out: pictures[0].save(
      out, format="GIF", save_all=True, append_images=pictures[1:],
      duration=int(duration_ms), loop=0))


def save_quality_over_time(points: list[dict], metrics, path: str, anchors: dict | None = None,
                           title: str | None = None) -> None:
  """One PNG of quality against training: a column per metric, a row against G steps and one against minutes.

  `points`: one dict per checkpoint with "generator_steps", "minutes" and, per series name, {metric: value};
  `metrics`: (key, label) pairs; `anchors`: {name: {metric: value}}, drawn as horizontal dashed lines.
  """
  if not points:
    raise ValueError("save_quality_over_time: no checkpoint to plot")
  series = [name for name in points[0] if isinstance(points[0][name], dict)]
  fig, axes = plt.subplots(2, len(metrics), figsize=(4.2 * len(metrics), 6.4), dpi=_DPI, squeeze=False)
  with _saved_figure(fig, path):
    for row, (x_key, x_label) in enumerate((("generator_steps", "generator steps"),
                                            ("minutes", "minutes (E's pre-training and training)"))):
      x = np.asarray([p[x_key] if p.get(x_key) is not None else np.nan for p in points], np.float64)
      for column, (key, label) in enumerate(metrics):
        ax = axes[row][column]
        for name in series:
          y = np.asarray([p[name].get(key, np.nan) if p[name].get(key) is not None else np.nan for p in points],
                         np.float64)
          keep = np.isfinite(x) & np.isfinite(y)
          ax.plot(x[keep], y[keep], marker=".", label=name)
        for j, (name, values) in enumerate((anchors or {}).items()):
          if values.get(key) is not None:
            ax.axhline(values[key], linestyle="--", color=f"C{len(series) + j}", linewidth=1, label=name)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if row == 0 and column == 0:
          ax.legend(fontsize=7)
    if title:
      fig.suptitle(title)
