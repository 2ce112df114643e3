"""Go's text/tabwriter as docker/cli uses it, for `table` output.

    tabwrite("NAME\\tIMAGE\\nweb\\tnginx\\n")  -> Go text/tabwriter(10, 1, 3, ' ', 0)
"""

from __future__ import annotations

import re


def tabwrite(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3) -> str:
    """Go's text/tabwriter with padchar ' ' and no flags (Docker: NewWriter(out, 10, 1, 3, ' ', 0)).

    Tab-terminated cells; a column block (consecutive lines having that column) is as wide
    as its widest cell plus `padding`, at least `minwidth`; a line's last cell is not padded.
    `tabwidth` only matters for tab padding and is accepted for signature compatibility.
    """
    lines = [re.split("[\t\v]", line) for line in text.split("\n")]
    out: list[str] = []

    def write_lines(line0, line1, widths):
        for i in range(line0, line1):
            for j, cell in enumerate(lines[i]):
                out.append(cell)
                if j < len(widths):
                    out.append(" " * (widths[j] - len(cell)))
            if i + 1 < len(lines):
                out.append("\n")

    def format_block(line0, line1, widths):
        column, this = len(widths), line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this, widths)
            line0, width = this, minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            format_block(line0, this, widths + [width])
            line0 = this
        write_lines(line0, line1, widths)

    format_block(0, len(lines), [])
    return "".join(out)
