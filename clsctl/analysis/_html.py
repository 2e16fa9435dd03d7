"""Self-contained HTML pages for ``report`` and ``dataset-doctor``: one file, pictures inlined as data URIs, a few
lines of inline CSS and JavaScript (click a column header to sort), nothing fetched from the network.

Numbers a test or a script may want to read carry ``data-*`` attributes (``data-metric``, ``data-class``), so the
page's values can be compared with the JSON the same run writes without parsing the visible text.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from clsctl import __version__

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
header{background:#24292f;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:1.35em}header p{margin:4px 0 0;color:#d0d7de;font-size:.9em}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:1.15em;margin:4px 0 10px}h3{font-size:1em;margin:14px 0 6px}
table{border-collapse:collapse;font-size:.9em;margin:6px 0}
th,td{border-bottom:1px solid #eaeef2;padding:4px 10px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \\2195";color:#8c959f}
img.figure{max-width:100%;height:auto;border:1px solid #eaeef2}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;background:#fff;border:1px solid #eaeef2;padding:6px;font-size:.8em;max-width:250px}
figure img{max-width:100%;height:auto;display:block;image-rendering:pixelated}
figcaption{margin-top:4px;word-break:break-all}
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700}.note{color:#57606a;font-size:.9em}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:.8em;max-height:420px}
img.thumb{width:64px;height:64px;object-fit:contain;image-rendering:pixelated;border:1px solid #eaeef2}
"""

_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.getAttribute("data-order") !== "asc";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
      th.setAttribute("data-order", ascending ? "asc" : "desc");
      function key(row) {
        var cell = row.cells[column];
        var text = cell.getAttribute("data-value") || cell.textContent.trim();
        var number = parseFloat(text);
        return isNaN(number) ? text.toLowerCase() : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value: object) -> str:
    """Text made safe for HTML."""
    return html.escape(str(value), quote=True)


def data_uri(path: str | Path) -> str:
    """A PNG (or JPEG) file as a ``data:`` URI."""
    path = Path(path)
    kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    return f"data:image/{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def jpeg_uri(path: str | Path, max_width: int = 320) -> str:
    """A picture file shrunk to at most ``max_width`` pixels wide and JPEG-encoded, as a data URI: photo-like
    pictures (CAM overlays) inline at a tenth of their PNG size."""
    import io

    from PIL import Image

    with Image.open(path) as image:
        picture = image.convert("RGB")
    if picture.width > max_width:
        picture = picture.resize((max_width, round(picture.height * max_width / picture.width)),
                                 Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return f"data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def img(src: str, alt: str, css_class: str = "figure") -> str:
    """An ``<img>`` element."""
    return f'<img class="{css_class}" src="{src}" alt="{esc(alt)}">'


def figure_file(path: str | Path, alt: str) -> str:
    """A picture file, inlined."""
    return img(data_uri(path), alt)


def cell(value: object, *, numeric: bool = False, sort: object | None = None, raw: bool = False,
         **attrs: object) -> str:
    """A ``<td>``; ``attrs`` become attributes (``data_metric="x"`` -> ``data-metric="x"``)."""
    parts = [' class="num"'] if numeric else []
    if sort is not None:
        parts.append(f' data-value="{esc(sort)}"')
    parts += [f' {name.replace("_", "-")}="{esc(v)}"' for name, v in attrs.items()]
    return f"<td{''.join(parts)}>{value if raw else esc(value)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, sortable: bool = False,
          numeric: Sequence[bool] | None = None, table_id: str | None = None) -> str:
    """A table from header names and rows of :func:`cell` strings."""
    numeric = numeric or [False] * len(headers)
    head = "".join(f'<th{" class=num" if n else ""}>{esc(h)}</th>' for h, n in zip(headers, numeric))
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    attributes = (' class="sortable"' if sortable else "") + (f' id="{esc(table_id)}"' if table_id else "")
    return f"<table{attributes}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def folded_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, visible: int = 10,
                 **options: object) -> str:
    """:func:`table` showing its first ``visible`` rows; the others in a second table behind a "show N more" fold,
    so a long list does not push the rest of the page away."""
    shown = table(headers, rows[:visible], **options)  # type: ignore[arg-type]
    if len(rows) <= visible:
        return shown
    options.pop("table_id", None)
    rest = table(headers, rows[visible:], **options)  # type: ignore[arg-type]
    return f"{shown}<details><summary>show {len(rows) - visible} more</summary>{rest}</details>"


def section(title: str, body: str, section_id: str | None = None) -> str:
    """A titled block of the page."""
    identifier = f' id="{esc(section_id)}"' if section_id else ""
    return f"<section{identifier}><h2>{esc(title)}</h2>{body}</section>"


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole document."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)} &middot; clsctl {esc(__version__)}</p></header>"
        f"<main>{''.join(sections)}</main><script>{_SORT_JS}</script></body></html>"
    )


def write_page(path: str | Path, title: str, subtitle: str, sections: Sequence[str]) -> Path:
    """Write the page (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(title, subtitle, sections), encoding="utf-8")
    return path


def thumbnail_uri(path: str | Path, size: int = 96) -> str | None:
    """A small JPEG of an image file as a data URI (small images are enlarged with crisp pixels); None when the
    file cannot be read. JPEG keeps a page of a few hundred thumbnails at a few MB."""
    import io

    from PIL import Image

    try:
        with Image.open(path) as image:
            picture = image.convert("RGB")
    except (OSError, ValueError, SyntaxError):
        return None
    factor = size / max(picture.size)
    new_size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    resample = Image.Resampling.NEAREST if factor > 1 else Image.Resampling.BILINEAR
    buffer = io.BytesIO()
    picture.resize(new_size, resample).save(buffer, format="JPEG", quality=85)
    return f"data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
