"""Draw fan-out throughput against width, per strategy, from ``--benchmark-json`` output.

``python -m benchmarks.fanout_plot [benchmarks/results/fanout.json] [out.png]``

Needs only the standard library: a small raster canvas with a 5x7 bitmap font,
written out as PNG (log-log axes: width in records, records per second).
"""

from __future__ import annotations

import json
import math
import struct
import sys
import zlib
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

_GLYPHS = {
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 11001 10101 10011 10001 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    " ": "00000 00000 00000 00000 00000 00000 00000",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "/": "00001 00010 00010 00100 01000 01000 10000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "_": "00000 00000 00000 00000 00000 00000 11111",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "%": "11000 11001 00010 00100 01000 10011 00011",
    "=": "00000 00000 11111 00000 11111 00000 00000",
}

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)]

Colour = tuple[int, int, int]


class Canvas:
    """An RGB raster with lines, boxes and bitmap text."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, colour: Colour, size: int = 1) -> None:
        """Paint a ``size`` x ``size`` square at (x, y)."""
        for dy in range(size):
            for dx in range(size):
                px, py = x + dx - size // 2, y + dy - size // 2
                if 0 <= px < self.width and 0 <= py < self.height:
                    i = (py * self.width + px) * 3
                    self.pixels[i : i + 3] = bytes(colour)

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: Colour, size: int = 1) -> None:
        """A straight line (Bresenham)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.dot(x0, y0, colour, size)
            if (x0, y0) == (x1, y1):
                return
            e2 = 2 * err
            if e2 >= dy:
                err, x0 = err + dy, x0 + sx
            if e2 <= dx:
                err, y0 = err + dx, y0 + sy

    def text(self, x: int, y: int, text: str, colour: Colour = (0, 0, 0), scale: int = 2) -> None:
        """Upper-cased text with its top-left corner at (x, y)."""
        for n, char in enumerate(text.upper()):
            rows = _GLYPHS.get(char, _GLYPHS[" "]).split()
            for r, row in enumerate(rows):
                for c, bit in enumerate(row):
                    if bit == "1":
                        for s in range(scale):
                            for t in range(scale):
                                self.dot(
                                    x + n * 6 * scale + c * scale + s, y + r * scale + t, colour
                                )

    def png(self) -> bytes:
        """The canvas as a PNG file."""
        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def series(report: dict[str, object]) -> dict[str, list[tuple[int, float]]]:
    """Records per second by strategy and width, from a pytest-benchmark JSON report."""
    out: dict[str, list[tuple[int, float]]] = {}
    for bench in report["benchmarks"]:  # type: ignore[attr-defined]
        info = bench.get("extra_info", {})
        if "width" in info and "records_per_second" in info:
            out.setdefault(info["strategy"], []).append((info["width"], info["records_per_second"]))
    return {k: sorted(v) for k, v in out.items()}


def draw(data: dict[str, list[tuple[int, float]]], title: str) -> Canvas:
    """A log-log chart of throughput against width, one line per strategy."""
    canvas = Canvas(960, 600)
    left, right, top, bottom = 130, 930, 60, 520
    widths = sorted({w for points in data.values() for w, _ in points})
    rates = [r for points in data.values() for _, r in points]
    lo, hi = math.floor(math.log10(min(rates))), math.ceil(math.log10(max(rates)))
    hi = max(hi, lo + 1)
    wlo, whi = math.log10(widths[0]), math.log10(widths[-1])

    def at(width: float, rate: float) -> tuple[int, int]:
        x = left + (math.log10(width) - wlo) / max(whi - wlo, 1e-9) * (right - left)
        y = bottom - (math.log10(rate) - lo) / (hi - lo) * (bottom - top)
        return int(x), int(y)

    grey, black = (215, 215, 215), (0, 0, 0)
    for decade in range(lo, hi + 1):
        _, y = at(widths[0], 10.0**decade)
        canvas.line(left, y, right, y, grey)
        label = f"{10**decade:,}"
        canvas.text(left - 12 - len(label) * 12, y - 7, label)
    for width in widths:
        x, _ = at(width, 10.0**lo)
        canvas.line(x, top, x, bottom, grey)
        canvas.text(x - len(f"{width:,}") * 6, bottom + 12, f"{width:,}")
    canvas.line(left, bottom, right, bottom, black, 2)
    canvas.line(left, top, left, bottom, black, 2)
    canvas.text(left, 6, title)
    canvas.text((left + right) // 2 - 150, bottom + 44, "fan-out width (records)")
    canvas.text(10, top - 28, "records/s (log)")
    for n, (strategy, points) in enumerate(sorted(data.items())):
        colour = COLOURS[n % len(COLOURS)]
        xy = [at(w, r) for w, r in points]
        for (x0, y0), (x1, y1) in zip(xy, xy[1:], strict=False):
            canvas.line(x0, y0, x1, y1, colour, 3)
        for x, y in xy:
            canvas.dot(x, y, colour, 9)
        canvas.line(left + 20, top + 20 + n * 24, left + 50, top + 20 + n * 24, colour, 3)
        canvas.text(left + 60, top + 13 + n * 24, strategy.replace("_", " "), colour)
    return canvas


def main(argv: list[str]) -> None:
    """Read the JSON report and write the PNG."""
    source = Path(argv[0]) if argv else RESULTS / "fanout.json"
    target = Path(argv[1]) if len(argv) > 1 else RESULTS / "fanout_throughput.png"
    report = json.loads(source.read_text())
    machine = report.get("machine_info", {})
    cpus = machine.get("cpu", {}).get("count", "?")
    title = f"fan-out throughput by strategy (dev server, {cpus} cpus)"
    target.write_bytes(draw(series(report), title).png())
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
