"""HTML of the report: one self-contained file (inline CSS, one small inline script, figures as base64 PNG)."""
import html
import re

CSS = """
:root { --fg: #1b1b1b; --muted: #5f6368; --line: #dadce0; --bg2: #f6f7f9; --pass: #e6f4ea; --fail: #fce8e6;
        --err: #fef7e0; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1180px; padding: 18px 24px 60px; line-height: 1.45;
       font-size: 14px; background: #fff; }
h1 { font-size: 22px; margin: 4px 0 2px; }
h2 { font-size: 17px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: var(--muted); font-size: 12.5px; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: var(--bg2); padding: 8px 10px; overflow-x: auto; border-radius: 4px; }
nav.toc { font-size: 13px; margin: 10px 0 0; }
nav.toc a { margin-right: 12px; color: #1a57b5; text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 12.5px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: var(--bg2); font-weight: 600; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-sort="asc"]::after { content: " \\25B2"; font-size: 9px; }
table.sortable th[data-sort="desc"]::after { content: " \\25BC"; font-size: 9px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.PASS td { background: var(--pass); } tr.FAIL td { background: var(--fail); } tr.ERROR td { background: var(--err); }
.notes { background: var(--err); border: 1px solid #f3d27a; padding: 6px 12px; border-radius: 4px; font-size: 13px; }
.notes ul { margin: 4px 0; padding-left: 20px; }
figure.fig { margin: 14px 0 22px; }
figure.fig img { max-width: 100%; height: auto; display: block; border: 1px solid #eee; }
figcaption { font-size: 12.5px; color: #333; max-width: 1000px; margin-top: 4px; }
figcaption .files { color: var(--muted); white-space: nowrap; }
details { margin: 4px 0; } summary { cursor: pointer; }
.runcard { border: 1px solid var(--line); border-radius: 4px; padding: 2px 10px; margin: 6px 0; }
.verdict { border: 2px solid #9aa0a6; border-radius: 5px; padding: 4px 12px 8px; margin: 12px 0; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: 600; font-size: 12px; }
.badge.PASS { background: #34a853; color: #fff; } .badge.FAIL { background: #d93025; color: #fff; }
.badge.ERROR { background: #f9ab00; color: #000; }
"""

# Sortable tables; the only script on the page (no network, no external files).
SCRIPT = """
(function () {
  function key(cell) {
    var t = cell.getAttribute('data-v');
    if (t === null) { t = cell.textContent.trim(); }
    var n = parseFloat(t);
    return isNaN(n) || !/^[-+]?[0-9.]/.test(t) ? t.toLowerCase() : n;
  }
  var heads = document.querySelectorAll('table.sortable thead th');
  Array.prototype.forEach.call(heads, function (th) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), body = table.tBodies[0];
      var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
      var asc = th.getAttribute('data-sort') !== 'asc';
      Array.prototype.forEach.call(table.querySelectorAll('thead th'), function (o) {
        o.removeAttribute('data-sort');
      });
      th.setAttribute('data-sort', asc ? 'asc' : 'desc');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[idx]), y = key(b.cells[idx]);
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""


def esc(s):
    return html.escape(str(s), quote=True)


def inline_md(s):
    """`code`, **bold**, [text](url) in already-escaped text."""
    s = esc(s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s)
    return s


def md_to_html(text, sortable=False):
    """A small Markdown subset: headings, pipe tables, fenced code, bullet lists, paragraphs."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre>" + esc("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
            continue
        m = re.match(r"(#{1,6})\s+(.*)", line)
        if m:
            lvl = min(len(m.group(1)) + 2, 6)
            out.append(f"<h{lvl}>{inline_md(m.group(2))}</h{lvl}>")
            i += 1
            continue
        if line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i].strip())
                i += 1
            cells = [[c.strip() for c in row.strip("|").split("|")] for row in block]
            cells = [r for r in cells if not all(re.fullmatch(r":?-{2,}:?", c) for c in r)]
            if cells:
                out.append(table(cells[0], cells[1:], sortable=sortable, md=True))
            continue
        if re.match(r"\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i]))
                i += 1
            out.append("<ul>" + "".join(f"<li>{inline_md(x)}</li>" for x in items) + "</ul>")
            continue
        if line.strip():
            para = [line]
            i += 1
            while i < len(lines) and lines[i].strip() and not re.match(r"(#|\||```|\s*[-*]\s)", lines[i]):
                para.append(lines[i])
                i += 1
            out.append("<p>" + inline_md(" ".join(para)) + "</p>")
            continue
        i += 1
    return "\n".join(out)


class Cell:
    """A table cell whose column sorts by `key` (a number, e.g. the run's position in the page's order)
    instead of its text."""

    def __init__(self, text, key):
        self.text, self.key = text, key


def _is_num(s):
    return bool(re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|nan|inf|-inf", str(s).strip()))


def table(headers, rows, sortable=True, md=False, row_classes=None, raw_cols=()):
    """rows: lists of cell values (str/float). md: cells are Markdown (inline). raw_cols: columns holding HTML.
    Rows get the class PASS / FAIL / ERROR (coloured) from row_classes, or else from a cell saying so."""
    h = ['<table class="sortable">' if sortable else "<table>", "<thead><tr>"]
    h += [f"<th>{inline_md(c) if md else esc(c)}</th>" for c in headers]
    h.append("</tr></thead><tbody>")
    for ri, row in enumerate(rows):
        rc = row_classes[ri] if row_classes else next(
            (v for v in (str(c).strip(" *`").upper() for c in row) if v in ("PASS", "FAIL", "ERROR")), "")
        cls = f' class="{esc(rc)}"' if rc else ""
        h.append(f"<tr{cls}>")
        for ci, c in enumerate(row):
            if ci in raw_cols:
                h.append(f"<td>{c}</td>")
                continue
            if isinstance(c, Cell):
                h.append(f'<td data-v="{esc(c.key)}">{inline_md(fmt(c.text)) if md else esc(fmt(c.text))}</td>')
                continue
            txt = fmt(c)
            num = ' class="num"' if _is_num(txt) else ""
            h.append(f"<td{num}>{inline_md(txt) if md else esc(txt)}</td>")
        h.append("</tr>")
    h.append("</tbody></table>")
    return "".join(h)


def fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1e5 or a < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4g}"
    return "" if v is None else str(v)


def figure(fig_id, number, png_b64, width_px, caption, files, alt, runs=None):
    """runs: the run directories the figure draws, listed in a data-runs attribute (for tests and scripts)."""
    links = " · ".join(f'<a href="{esc(p)}">{esc(kind)}</a>' for kind, p in files)
    dr = f' data-runs="{esc(chr(10).join(runs))}"' if runs else ""
    return (f'<figure class="fig" id="fig-{esc(fig_id)}" data-figure="{esc(fig_id)}"{dr}>'
            f'<img src="data:image/png;base64,{png_b64}" width="{int(width_px)}" alt="{esc(alt)}">'
            f"<figcaption><b>Figure {number}.</b> {caption} <span class=\"files\">[{links}]</span></figcaption>"
            f"</figure>")


def collapse_notes(notes, max_names=12):
    """notes: HTML strings, or (run label, HTML) pairs for a note about one run. A repeated string is kept
    once; the runs sharing a note become one line naming them ("text — 3 runs: a, b, c"), in first order."""
    order, runs_of = [], {}
    for n in notes:
        label, text = n if isinstance(n, tuple) else (None, n)
        if text not in runs_of:
            runs_of[text] = []
            order.append(text)
        if label is not None and label not in runs_of[text]:
            runs_of[text].append(label)
    out = []
    for text in order:
        labs = runs_of[text]
        if not labs:
            out.append(text)
        elif len(labs) == 1:
            out.append(f"<b>{esc(labs[0])}</b>: {text}")
        else:
            names = ", ".join(esc(x) for x in labs[:max_names])
            if len(labs) > max_names:
                names += f" and {len(labs) - max_names} more"
            out.append(f'{text} — <span class="runs">{len(labs)} runs: {names}</span>')
    return out


def notes_box(notes, title="Notes"):
    """A box of notes (collapse_notes: repeated lines once, per-run lines grouped by run)."""
    notes = collapse_notes(notes)
    if not notes:
        return ""
    return (f'<div class="notes"><b>{esc(title)}</b><ul>' + "".join(f"<li>{n}</li>" for n in notes)
            + "</ul></div>")


def document(title, subtitle_html, toc, body_parts, expected_figures):
    toc_html = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in toc)
    figs = esc(",".join(expected_figures))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta name=\"attnlab-figures\" content=\"{figs}\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><div class=\"sub\">{subtitle_html}</div>"
            f"<nav class=\"toc\">{toc_html}</nav>\n" + "\n".join(body_parts)
            + f"\n<script>{SCRIPT}</script></body></html>\n")
