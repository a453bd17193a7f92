// A horizontal SVG bar chart of answers by response code (a window's `by_code`): one bar per
// code, most frequent first, its length the code's count, the code a link to its
// explanation. Drawn as SVG elements; no style attributes (the page's CSP allows only the
// style sheet).
const SVG = "http://www.w3.org/2000/svg";
const ROW = 28;
const LABEL_W = 44;
const COUNT_W = 56;
const WIDTH = 360;
const TOP = 6;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    node.textContent = String(text);
  }
  return node;
}

/**
 * The chart of `byCode` (`{"00": 12, "51": 3}`), titled `title` for screen readers.
 * `href(code)` gives each code's link.
 */
export function codeChart(byCode, title, href) {
  const rows = Object.entries(byCode || {})
    .map(([code, n]) => [code, Number(n)])
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const height = TOP * 2 + ROW * rows.length;
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${WIDTH} ${height}`,
    width: WIDTH,
    height,
    role: "img",
    "aria-label": title,
  });
  chart.append(svg("title", {}, title));
  const max = Math.max(1, ...rows.map(([, n]) => n));
  const span = WIDTH - LABEL_W - COUNT_W;
  rows.forEach(([code, n], i) => {
    const y = TOP + i * ROW;
    const bar = Math.max(2, Math.round((n / max) * span));
    const link = svg("a", { href: href(code), class: "chart-code" });
    link.append(svg("text", { x: LABEL_W - 8, y: y + ROW / 2 + 5, "text-anchor": "end" }, code));
    const rect = svg("rect", {
      x: LABEL_W,
      y: y + 4,
      width: bar,
      height: ROW - 8,
      rx: 3,
      class: code === "00" ? "bar bar-ok" : "bar bar-fail",
      "data-code": code,
      "data-count": n,
    });
    rect.append(svg("title", {}, `${code}: ${n}`));
    const count = svg("text", { x: LABEL_W + bar + 6, y: y + ROW / 2 + 5, class: "chart-count" }, n);
    chart.append(link, rect, count);
  });
  chart.append(svg("line", { x1: LABEL_W, y1: TOP, x2: LABEL_W, y2: height - TOP, class: "axis" }));
  return chart;
}
