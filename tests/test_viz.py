import numpy as np
import pytest
from PIL import Image

from jaxlatent.report import plots as viz


def test_to_uint8_maps_range_and_layout():
    x = np.stack([np.full((3, 2, 2), -1.0), np.full((3, 2, 2), 1.0), np.full((3, 2, 2), 5.0)])
    u = viz.to_uint8(x)
    assert u.shape == (3, 2, 2, 3) and u.dtype == np.uint8
    assert u[0].max() == 0 and u[1].min() == 255 and u[2].min() == 255


def test_image_grid_places_tiles():
    imgs = np.linspace(-1, 1, 5)[:, None, None, None] * np.ones((5, 1, 4, 4))
    g = viz.image_grid(imgs, nrow=3, padding=1, pad_value=7)
    assert g.shape == (2 * 5 + 1, 3 * 5 + 1, 1)
    assert g[0, 0, 0] == 7  # padding
    assert g[1, 1, 0] == viz.to_uint8(imgs)[0, 0, 0, 0]
    assert g[6, 1, 0] == viz.to_uint8(imgs)[3, 0, 0, 0]  # second row, first tile


def test_image_grid_rejects_wrong_rank():
    with pytest.raises(ValueError, match="N, C, H, W"):
        viz.image_grid(np.zeros((4, 4)))


def test_save_and_plots(tmp_path):
    p = viz.save_image_grid(np.zeros((4, 3, 8, 8)), tmp_path / "g.png")
    im = Image.open(p)
    assert im.size[0] > 8 * 8  # upscaled small images
    s = np.sort(np.random.default_rng(0).random((10, 6)), axis=1)[:, ::-1]
    outs = [
        viz.plot_spectra(s, tmp_path / "s.png"),
        viz.plot_spectra({"a": s, "b": s * 2}, tmp_path / "s2.png"),
        viz.plot_heatmap(np.eye(3), tmp_path / "h.png", labels=["a", "b", "c"]),
        viz.plot_lines([0, 1, 2], {"x": [1, 2, 3]}, tmp_path / "l.png", bands={"x": ([0, 1, 2], [2, 3, 4])}),
        viz.plot_bars(["a", "b"], [1.0, 2.0], tmp_path / "b.png", errors=[0.1, 0.2]),
    ]
    for o in outs:
        assert Image.open(o).size[0] > 100
