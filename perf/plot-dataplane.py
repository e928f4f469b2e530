#!/usr/bin/env python3
"""Draws a data-plane benchmark run (the JSON that perf/run-dataplane.sh
writes next to its Markdown table) as one SVG with two panels:

  left:  Gbit/s per core (inner bytes) against the peer count, decrypt
         (solid) and encrypt (dashed) per packet size, with the crypto-only
         ceiling measured in the same run (dotted, decrypt's);
  right: the data plane as a share of that ceiling, with issue 3's targets
         (75 % at 64 B, 85 % at 1420 B) as horizontal lines.

Standard library only (the plot has to come out wherever the benchmark
runs). Usage: plot-dataplane.py RESULT.json OUT.svg [--mode recycled]
"""
import html
import json
import sys

COLORS = {64: '#1f77b4', 512: '#2ca02c', 1420: '#d62728'}
W, H = 1000, 470
PANEL_W, PANEL_H = 400, 300
LEFT = (70, 60)    # top-left corner of each panel's plotting area
RIGHT = (570, 60)


def load(path, mode):
    with open(path) as f:
        runs = json.load(f)
    rows = [r for run in runs for r in run['rows'] if r['mode'] == mode]
    if not rows:
        raise SystemExit('plot-dataplane: no %s rows in %s' % (mode, path))
    facts = runs[0]
    return rows, facts


def peer_label(n):
    return '{:,}'.format(n).replace(',', ' ')


class Panel:
    def __init__(self, origin, peers, y_lo, y_hi):
        self.x0, self.y0 = origin
        self.peers = peers
        self.y_lo, self.y_hi = y_lo, y_hi

    def x(self, peers):
        i = self.peers.index(peers)
        return self.x0 + 30 + i * (PANEL_W - 60) / max(1, len(self.peers) - 1)

    def y(self, v):
        return self.y0 + PANEL_H - (v - self.y_lo) / (self.y_hi - self.y_lo) * PANEL_H

    def frame(self, out, title, y_ticks, y_fmt):
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'
                   % (self.x0, self.y0, PANEL_W, PANEL_H))
        out.append('<text x="%d" y="%d" font-size="15" font-weight="bold">%s</text>'
                   % (self.x0, self.y0 - 12, html.escape(title)))
        for v in y_ticks:
            y = self.y(v)
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                       % (self.x0, y, self.x0 + PANEL_W, y))
            out.append('<text x="%d" y="%.1f" font-size="12" text-anchor="end">%s</text>'
                       % (self.x0 - 6, y + 4, y_fmt(v)))
        for p in self.peers:
            out.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>'
                       % (self.x(p), self.y0 + PANEL_H + 18, peer_label(p)))
        out.append('<text x="%d" y="%d" font-size="12" text-anchor="middle">peers</text>'
                   % (self.x0 + PANEL_W / 2, self.y0 + PANEL_H + 36))

    def line(self, out, points, color, dash='', marker='circle'):
        pts = ' '.join('%.1f,%.1f' % (self.x(p), self.y(v)) for p, v in points)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                   % (pts, color, ' stroke-dasharray="%s"' % dash if dash else ''))
        for p, v in points:
            if marker == 'circle':
                out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (self.x(p), self.y(v), color))
            elif marker == 'square':
                out.append('<rect x="%.1f" y="%.1f" width="7" height="7" fill="%s"/>'
                           % (self.x(p) - 3.5, self.y(v) - 3.5, color))


def draw(rows, facts, mode):
    peers = sorted({r['peers'] for r in rows})
    sizes = sorted({r['size'] for r in rows})
    get = {(r['direction'], r['size'], r['peers']): r for r in rows}
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>']

    gbps_max = max(max(r['gbps'], r['ceiling_mpps'] * r['size'] * 8 / 1000) for r in rows)
    top = 5 * (int(gbps_max / 5) + 1)
    left = Panel(LEFT, peers, 0, top)
    left.frame(out, 'Gbit/s per core (inner bytes)', range(0, top + 1, 5), lambda v: '%d' % v)
    right = Panel(RIGHT, peers, 40, 100)
    right.frame(out, 'share of the crypto-only ceiling', range(40, 101, 10), lambda v: '%d %%' % v)

    targets = [(size, target) for size, target in ((1420, 85), (64, 75)) if size in sizes]
    for size, target in targets:
        y = right.y(target)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="1.5" '
                   'stroke-dasharray="2,3"/>' % (right.x0, y, right.x0 + PANEL_W, y, COLORS.get(size, '#000')))
    if targets:  # said in the panel's empty bottom-left corner, off the lines
        out.append('<text x="%d" y="%.1f" font-size="11" fill="#333">dotted: the targets, %s</text>'
                   % (right.x0 + 8, right.y(42), ', '.join('%d %% at %d B' % (t, s) for s, t in targets)))

    for size in sizes:
        color = COLORS.get(size, '#000')
        for direction, dash, marker in (('decrypt', '', 'circle'), ('encrypt', '6,4', 'square')):
            pts = [(p, get[(direction, size, p)]) for p in peers if (direction, size, p) in get]
            left.line(out, [(p, r['gbps']) for p, r in pts], color, dash, marker)
            right.line(out, [(p, 100 * r['ratio']) for p, r in pts], color, dash, marker)
        ceil = [(p, get[('decrypt', size, p)]['ceiling_mpps'] * size * 8 / 1000)
                for p in peers if ('decrypt', size, p) in get]
        pts = ' '.join('%.1f,%.1f' % (left.x(p), left.y(v)) for p, v in ceil)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1" stroke-dasharray="1,3"/>'
                   % (pts, color))

    # Legend, under the panels.
    ly = H - 36
    x = 70
    for size in sizes:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (x, ly - 10, COLORS.get(size, '#000')))
        out.append('<text x="%d" y="%d" font-size="12">%d B</text>' % (x + 16, ly, size))
        x += 80
    x += 20
    for text, dash in (('decrypt', ''), ('encrypt', '6,4'), ('ceiling (decrypt)', '1,3')):
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="2"%s/>'
                   % (x, ly - 4, x + 30, ly - 4, ' stroke-dasharray="%s"' % dash if dash else ''))
        out.append('<text x="%d" y="%d" font-size="12">%s</text>' % (x + 36, ly, text))
        x += 150
    out.append('<text x="70" y="%d" font-size="11" fill="#555">%s mode, %s AEAD, K=%s, %s repetitions, '
               'one lcore; each point the median of the repetitions</text>'
               % (H - 12, html.escape(mode), html.escape(str(facts.get('aead', '?'))), facts.get('k', '?'),
                  facts.get('reps', '?')))
    out.append('</svg>')
    return '\n'.join(out) + '\n'


def main():
    args = sys.argv[1:]
    mode = 'recycled'
    if '--mode' in args:
        i = args.index('--mode')
        mode = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows, facts = load(args[0], mode)
    with open(args[1], 'w') as f:
        f.write(draw(rows, facts, mode))
    return 0


if __name__ == '__main__':
    sys.exit(main())
