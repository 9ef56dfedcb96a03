"""PNG charts drawn with Pillow, for reports people look at rather than read (matplotlib is not a
dependency): points against a diagonal, bars beside a reference line and band, and a curve with
labelled points, on axes with round-number ticks and labels; and the Markdown that shows them."""

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SIZE = (720, 480)
# room around the plot box: the y tick labels and axis label on the left, the x ones below, the title above
LEFT, RIGHT, TOP, BOTTOM = 84, 24, 48, 76
INK, GRID, REFERENCE, BAND = (30, 30, 30), (225, 225, 225), (200, 40, 40), (250, 225, 225)
SERIES = ((52, 101, 164), (230, 140, 30), (80, 160, 80))  # one colour per bar series, points use the first
TITLE_FONT, LABEL_FONT, TICK_FONT = (ImageFont.load_default(size=size) for size in (17, 14, 12))


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten apart) from at or below `low` to at
    or above `high`."""
    if high <= low:
        low, high = low - 1, high + 1
    rough = (high - low) / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(i * step, 10) for i in range(first, last + 1)]  # round: no 0.30000000000000004 labels


class _Axes:
    """A white image with a titled, labelled plot box whose y axis spans `y_ticks`; x spans `x_range`."""

    def __init__(self, title: str, x_label: str, y_label: str, x_range: tuple[float, float], y_ticks: list[float]):
        self.image = Image.new("RGB", SIZE, "white")
        self.draw = ImageDraw.Draw(self.image)
        self.box = (LEFT, TOP, SIZE[0] - RIGHT, SIZE[1] - BOTTOM)
        self.x_range, self.y_range = x_range, (y_ticks[0], y_ticks[-1])
        self.draw.text((SIZE[0] / 2, TOP / 2), title, fill=INK, font=TITLE_FONT, anchor="mm")
        self.draw.text(((LEFT + SIZE[0] - RIGHT) / 2, SIZE[1] - 18), x_label, fill=INK, font=LABEL_FONT, anchor="mm")
        label = Image.new("RGB", (SIZE[1] - TOP - BOTTOM, 20), "white")
        ImageDraw.Draw(label).text((label.width / 2, 10), y_label, fill=INK, font=LABEL_FONT, anchor="mm")
        self.image.paste(label.rotate(90, expand=True), (8, TOP))
        for value in y_ticks:
            y = self.y(value)
            self.draw.line((LEFT, y, self.box[2], y), fill=GRID)
            self.draw.text((LEFT - 6, y), f"{value:g}", fill=INK, font=TICK_FONT, anchor="rm")

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.box[0] + (value - low) / (high - low) * (self.box[2] - self.box[0])

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.box[3] - (value - low) / (high - low) * (self.box[3] - self.box[1])

    def x_ticks(self, values: list[float]) -> None:
        for value in values:
            x = self.x(value)
            self.draw.line((x, self.box[1], x, self.box[3]), fill=GRID)
            self.draw.text((x, self.box[3] + 6), f"{value:g}", fill=INK, font=TICK_FONT, anchor="mt")

    def save(self, path: Path) -> Path:
        self.draw.rectangle(self.box, outline=INK)  # last, so that nothing covers the frame
        self.image.save(path, "PNG")
        return path


def scatter(path: Path, xs: list[float], ys: list[float], title: str, x_label: str, y_label: str) -> Path:
    """Points with the diagonal y = x, on the same scale on both axes so that the diagonal is at 45°."""
    scale = ticks(min(xs + ys), max(xs + ys))
    axes = _Axes(title, x_label, y_label, (scale[0], scale[-1]), scale)
    axes.x_ticks(scale)
    axes.draw.line((axes.x(scale[0]), axes.y(scale[0]), axes.x(scale[-1]), axes.y(scale[-1])), fill=REFERENCE, width=2)
    for x, y in zip(xs, ys):
        px, py = axes.x(x), axes.y(y)
        axes.draw.ellipse((px - 2.5, py - 2.5, px + 2.5, py + 2.5), outline=SERIES[0])
    return axes.save(path)


def bars(path: Path, labels: list[str], series: dict[str, list[float]], title: str, x_label: str, y_label: str,
         line: float | None = None, band: tuple[float, float] | None = None) -> Path:
    """One group of bars per label, one bar per series (a legend names them when there are several),
    each with its value on top; `line` and `band` mark a target across the plot."""
    values = [v for found in series.values() for v in found]
    marks = [0.0, *values, *([line] if line is not None else []), *(band or ())]
    axes = _Axes(title, x_label, y_label, (0, len(labels)), ticks(min(marks), max(marks)))
    if band is not None:
        axes.draw.rectangle((axes.box[0] + 1, axes.y(band[1]), axes.box[2] - 1, axes.y(band[0])), fill=BAND)
    width = 0.7 / len(series)
    for s, found in enumerate(series.values()):
        for i, value in enumerate(found):
            left = i + 0.15 + s * width
            top, bottom = sorted((axes.y(value), axes.y(0)))
            axes.draw.rectangle((axes.x(left), top, axes.x(left + width) - 1, bottom), fill=SERIES[s])
            anchor, y = ("md", top - 3) if value >= 0 else ("ma", bottom + 3)
            axes.draw.text((axes.x(left + width / 2), y), f"{value:.2f}", fill=INK, font=TICK_FONT, anchor=anchor)
    for i, label in enumerate(labels):
        axes.draw.text((axes.x(i + 0.5), axes.box[3] + 6), label, fill=INK, font=TICK_FONT, anchor="mt")
    axes.draw.line((axes.box[0], axes.y(0), axes.box[2], axes.y(0)), fill=INK)
    if line is not None:
        axes.draw.line((axes.box[0], axes.y(line), axes.box[2], axes.y(line)), fill=REFERENCE, width=2)
    if len(series) > 1:
        for s, name in enumerate(series):
            y = axes.box[1] + 10 + 18 * s
            axes.draw.rectangle((axes.box[0] + 10, y - 5, axes.box[0] + 20, y + 5), fill=SERIES[s])
            axes.draw.text((axes.box[0] + 26, y), name, fill=INK, font=TICK_FONT, anchor="lm")
    return axes.save(path)


def curve(path: Path, points: list[tuple[float, float]], title: str, x_label: str, y_label: str,
          marks: dict[str, tuple[float, float]] | None = None, unit: bool = False) -> Path:
    """A line through `points` (x, y) in their order; each of `marks` a dot at its point, named in a
    legend. `unit`: both axes span 0 to 1 (shares, such as precision and recall), else the data."""
    marks = marks or {}
    xs, ys = [x for x, _ in [*points, *marks.values()]], [y for _, y in [*points, *marks.values()]]
    x_ticks, y_ticks = (ticks(0, 1), ticks(0, 1)) if unit else (ticks(min(xs), max(xs)), ticks(min(ys), max(ys)))
    axes = _Axes(title, x_label, y_label, (x_ticks[0], x_ticks[-1]), y_ticks)
    axes.x_ticks(x_ticks)
    axes.draw.line([(axes.x(x), axes.y(y)) for x, y in points], fill=SERIES[0], width=2)
    for s, (name, (x, y)) in enumerate(marks.items()):
        colour = SERIES[1 + s % (len(SERIES) - 1)]
        px, py = axes.x(x), axes.y(y)
        axes.draw.ellipse((px - 5, py - 5, px + 5, py + 5), fill=colour)
        legend = axes.box[3] - 14 - 18 * (len(marks) - 1 - s)
        axes.draw.ellipse((axes.box[0] + 10, legend - 5, axes.box[0] + 20, legend + 5), fill=colour)
        axes.draw.text((axes.box[0] + 26, legend), name, fill=INK, font=TICK_FONT, anchor="lm")
    return axes.save(path)


def embed(sections: list[tuple[str, str, str]], level: int = 2) -> list[str]:
    """Markdown lines that show each drawn plot, (heading, file name beside the report, caption),
    under its heading."""
    lines = []
    for heading, image, caption in sections:
        lines += ["", f"{'#' * level} {heading}", "", caption, "", f"![{heading}]({image})"]
    return lines
