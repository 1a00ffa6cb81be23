"""A minimal terminal screen for tests: what a person would see after a program's bytes reach a terminal.

Stripping escape codes from captured output shows every frame ever drawn at once; this replays them instead, so a
test can ask what the screen holds at a given moment (is the status display drawn once, in place, header first?)
and whether any line ever reached past the right edge (a real terminal would wrap it there, and a display that
redraws itself by moving the cursor up a fixed number of rows would then leave garbage behind).

It knows what rich's Live and plain printing send: printable text, CR, LF, cursor up (CSI n A), erase in line
(CSI n K), colours and attributes (CSI ... m), cursor visibility (CSI ? 25 h / l). Any other control sequence is an
error, so that a display starting to use one cannot pass unnoticed. `OSC 999 ; text BEL`, which terminals ignore,
is the tests' own marker: a snapshot of the screen is taken there (the test's child process writes it), and
`width=N` in it says the test resized the terminal to N columns.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b\]999;([^\x07]*)\x07|([\r\n])|([^\x1b\r\n]+)")


class Screen:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows: list[list[str]] = [[] for _ in range(height)]
        self.scrolled: list[str] = []  # rows that went off the top
        self.row = self.col = 0
        self.wraps: list[str] = []     # the text of every row a printed character ran past the right edge of
        self.snapshots: list[tuple[str, list[str]]] = []

    def feed(self, text: str) -> Screen:
        pos = 0
        while pos < len(text):
            found = _TOKEN.match(text, pos)
            if found is None:
                raise ValueError(f"unknown control sequence at {text[pos:pos + 20]!r}")
            pos = found.end()
            params, command, marker, control, printable = found.groups()
            if command is not None:
                self._csi(params, command)
            elif marker is not None:  # "width=N": the test resized the terminal here
                if marker.startswith("width="):
                    self.width = int(marker.removeprefix("width="))
                self.snapshots.append((marker, self.lines()))
            elif control == "\r":
                self.col = 0
            elif control == "\n":
                self._line_feed()
            else:
                for char in printable:
                    self._put(char)
        return self

    def lines(self) -> list[str]:
        """The screen's rows as text, trailing spaces and empty rows at the bottom left out."""
        rows = ["".join(r).rstrip() for r in self.rows]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def _csi(self, params: str, command: str) -> None:
        if command == "m" or params in ("?25",) and command in "hl":
            return
        n = int(params) if params.isdigit() else None
        if command == "A":
            self.row = max(0, self.row - (n or 1))
            self.col = min(self.col, self.width - 1)
        elif command == "K" and n in (None, 0, 2):
            row = self.rows[self.row]
            self.rows[self.row] = [] if n == 2 else row[:self.col]
        else:
            raise ValueError(f"unknown control sequence CSI {params}{command}")

    def _put(self, char: str) -> None:
        if self.col >= self.width:  # a real terminal wraps here
            self.wraps.append("".join(self.rows[self.row]))
            self.col = 0
            self._line_feed()
        row = self.rows[self.row]
        row.extend(" " * (self.col - len(row)))
        if self.col < len(row):
            row[self.col] = char
        else:
            row.append(char)
        self.col += 1

    def _line_feed(self) -> None:
        if self.row == self.height - 1:
            self.scrolled.append("".join(self.rows.pop(0)).rstrip())
            self.rows.append([])
        else:
            self.row += 1
