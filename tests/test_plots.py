"""The Pillow charts of reelvec/tools/plots.py: a readable PNG of the set size with the points, bars,
line and band drawn in their colours, and round ticks around the data."""

import pytest
from PIL import Image

from reelvec.tools import plots


def _opened(path):
    image = Image.open(path)
    image.load()  # a truncated or corrupt file fails here
    return image


def _pixels_of(image, colour) -> int:
    return sum(count for count, found in image.getcolors(image.width * image.height) if found == colour)


def test_scatter_writes_a_png_with_points_and_the_diagonal(tmp_path):
    xs = [0.5, 2.0, 4.0, 7.5, 9.0]
    path = plots.scatter(tmp_path / "points.png", xs, [x + 0.5 for x in xs], "title", "actual", "predicted")
    image = _opened(path)
    assert image.format == "PNG" and image.size == plots.SIZE
    assert _pixels_of(image, plots.SERIES[0]) > 5 * 8  # five ringed points
    assert _pixels_of(image, plots.REFERENCE) > 300  # the diagonal across the box


def test_bars_draw_each_series_and_the_target(tmp_path):
    path = plots.bars(tmp_path / "bars.png", ["author", "+ text", "+ visual"],
                      {"R^2": [0.6, -0.2, 0.7], "Spearman": [0.7, 0.1, 0.75]}, "title", "features", "score",
                      line=0.8, band=(0.72, 0.88))
    image = _opened(path)
    assert image.format == "PNG" and image.size == plots.SIZE
    first, second = (_pixels_of(image, colour) for colour in plots.SERIES[:2])
    assert first > 5000 and second > 5000  # three bars each, not a legend swatch alone
    assert _pixels_of(image, plots.REFERENCE) > 500 and _pixels_of(image, plots.BAND) > 5000


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-0.23, 0.71), (3.0, 17.2), (5.0, 5.0), (0.001, 0.0042)])
def test_ticks_are_round_and_cover_the_data(low, high):
    found = plots.ticks(low, high)
    assert found[0] <= low and found[-1] >= high
    assert 3 <= len(found) <= 12
    steps = {round(b - a, 9) for a, b in zip(found, found[1:])}
    assert len(steps) == 1  # evenly spaced


def test_curve_draws_the_line_and_each_marked_point(tmp_path):
    points = [(0.1, 1.0), (0.5, 0.9), (0.8, 0.7), (1.0, 0.3)]
    path = plots.curve(tmp_path / "curve.png", points, "title", "recall", "precision",
                       {"decision": (0.8, 0.7), "operating point": (0.5, 0.9)}, unit=True)
    image = _opened(path)
    assert image.format == "PNG" and image.size == plots.SIZE
    assert _pixels_of(image, plots.SERIES[0]) > 500  # the line across the box
    assert _pixels_of(image, plots.SERIES[1]) > 2 * 60 and _pixels_of(image, plots.SERIES[2]) > 2 * 60  # dot + legend
