"""Writing a converted chunk as PostgreSQL COPY text (tab-separated, \\N for NULL), one part
per merge lane, with a memo per field so a repeated value is rendered once."""

from __future__ import annotations

from collections.abc import Callable

from .cells import MEMO_LIMIT
from .columns import Converted

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
NULL = "\\N"


def _text(value) -> str:
    text = value if type(value) is str else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text or "\x00" in text:
        return text.translate(_ESCAPES)
    return text


def _array(items) -> str:
    inner = ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in items)
    return _text("{" + inner + "}")


def _field_text(sql_type: str) -> Callable:
    if sql_type == "boolean":
        return lambda v: "t" if v else "f"
    if sql_type == "timestamptz":
        return lambda v: v.isoformat()
    if sql_type == "text[]":
        return _array
    return _text


def copy_parts(converted: Converted, types: dict[str, str], lanes: list[int]) -> dict:
    """{lane: (COPY text, rows)} for each of `lanes`: the rows of that merge lane as
    tab-separated lines (\\N for NULL), row number first, then the fields of `types` in
    order."""
    columns = []
    for name, sql_type in types.items():
        values = converted.columns.get(name)
        if values is None:
            columns.append([NULL] * len(converted.numbers))
            continue
        render = _field_text(sql_type)
        memo: dict = {None: NULL}
        rendered = []
        for value in values:
            hashable = type(value) is not float
            text = memo.get(value) if hashable else None
            if text is None:
                text = render(value)
                if hashable and len(memo) < MEMO_LIMIT:
                    memo[value] = text
            rendered.append(text)
        columns.append(rendered)
    lines = ["\t".join(row) for row in zip(map(str, converted.numbers), *columns, strict=True)]
    if len(lanes) == 1 and all(lane == lanes[0] for lane in converted.lanes):
        return {lanes[0]: (("\n".join(lines) + "\n").encode() if lines else b"", len(lines))}
    out = {}
    for lane in lanes:
        mine = [line for line, of in zip(lines, converted.lanes, strict=True) if of == lane]
        out[lane] = (("\n".join(mine) + "\n").encode() if mine else b"", len(mine))
    return out
