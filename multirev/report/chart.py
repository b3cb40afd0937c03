"""A small PNG bar chart of observed vs expected shares, written without plotting libraries.

For each subset, left to right: a grey bar (expected share), a blue bar (observed share) and a red
whisker (the test's interval at its last look). The y axis runs from 0 to 100%, with a tick every 10%.
"""

from __future__ import annotations

import struct
import zlib

WIDTH, HEIGHT, MARGIN = 420, 220, 20
GREY, BLUE, RED, BLACK, WHITE, LIGHT = (150, 150, 150), (40, 90, 200), (210, 30, 30), (0, 0, 0), (255, 255, 255), \
    (225, 225, 225)


def _png(pixels: list[bytearray]) -> bytes:
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def share_chart(rows: list[tuple[str, float, float, float, float]]) -> bytes:
    """rows: (name, expected, observed, low, high), shares in [0, 1]."""
    pixels = [bytearray(WHITE * WIDTH) for _ in range(HEIGHT)]

    def rect(x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        for y in range(max(0, y0), min(HEIGHT, y1)):
            for x in range(max(0, x0), min(WIDTH, x1)):
                pixels[y][3 * x:3 * x + 3] = bytes(color)

    plot_h = HEIGHT - 2 * MARGIN

    def y_of(share: float) -> int:
        return HEIGHT - MARGIN - round(max(0.0, min(1.0, share)) * plot_h)

    for tick in range(11):
        rect(MARGIN, y_of(tick / 10), WIDTH - MARGIN, y_of(tick / 10) + 1, LIGHT)
    rect(MARGIN, MARGIN, MARGIN + 1, HEIGHT - MARGIN, BLACK)
    rect(MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN + 1, BLACK)
    slot = (WIDTH - 2 * MARGIN) // max(1, len(rows))
    for i, (_, expected, observed, low, high) in enumerate(rows):
        x = MARGIN + i * slot + slot // 6
        bar = slot // 4
        rect(x, y_of(expected), x + bar, HEIGHT - MARGIN, GREY)
        rect(x + bar + 4, y_of(observed), x + 2 * bar + 4, HEIGHT - MARGIN, BLUE)
        whisker = x + bar + 4 + bar // 2
        rect(whisker - 1, y_of(high), whisker + 2, y_of(low) + 1, RED)
        rect(whisker - 5, y_of(high), whisker + 6, y_of(high) + 2, RED)
        rect(whisker - 5, y_of(low) - 1, whisker + 6, y_of(low) + 1, RED)
    return _png(pixels)
