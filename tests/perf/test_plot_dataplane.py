#!/usr/bin/env python3
"""perf/plot-dataplane.py on a made-up run (suite unit): every series is
drawn where its numbers say, the targets are drawn, and a run without the
recycled mode is refused with a clear message.

Usage: test_plot_dataplane.py PATH/TO/perf/plot-dataplane.py
"""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG = '{http://www.w3.org/2000/svg}'
PEERS = [1, 1000, 10000, 100000]
SIZES = [64, 512, 1420]


def row(peers, mode, direction, size, ratio):
    ceiling_mpps = {64: 6.5, 512: 3.2, 1420: 1.9}[size]
    mpps = ceiling_mpps * ratio
    return {'peers': peers, 'mode': mode, 'direction': direction, 'size': size, 'mpps': mpps,
            'gbps': mpps * size * 8 / 1000, 'cycles': 2600 / mpps, 'ceiling_mpps': ceiling_mpps,
            'ceiling_cycles': 2600 / ceiling_mpps, 'ratio': ratio, 'lost': 0}


def ratio_of(peers, direction, size):
    # Distinct per point, so a point drawn in the wrong place is caught.
    return 0.9 - 0.05 * PEERS.index(peers) - (0.02 if direction == 'decrypt' else 0) - 0.001 * SIZES.index(size)


def run(plot, runs, tmp):
    src = os.path.join(tmp, 'run.json')
    out = os.path.join(tmp, 'run.svg')
    with open(src, 'w') as f:
        json.dump(runs, f)
    r = subprocess.run([sys.executable, plot, src, out], capture_output=True, text=True)
    return r, out


def main():
    plot = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory(prefix='plot-test-') as tmp:
        runs = [{'aead': 'avx512', 'k': 1024, 'reps': 3,
                 'rows': [row(p, m, d, s, ratio_of(p, d, s)) for m in ('cold', 'recycled')
                          for d in ('decrypt', 'encrypt') for s in SIZES]} for p in PEERS]
        r, out = run(plot, runs, tmp)
        if r.returncode != 0:
            print('FAIL the plot of a full run: exit %d\n%s' % (r.returncode, r.stderr))
            return 1
        root = ET.parse(out).getroot()
        lines = root.findall(SVG + 'polyline')
        # Per size: decrypt and encrypt on each panel, and the ceiling.
        if len(lines) != 5 * len(SIZES):
            failures.append('%d polylines, want %d' % (len(lines), 5 * len(SIZES)))
        # The right panel (origin 570,60, 300 high, 40..100 %): each ratio's
        # circle (decrypt) at the height its share says, over its peer count.
        circles = [(float(c.get('cx')), float(c.get('cy'))) for c in root.iter(SVG + 'circle')]
        for p in PEERS:
            for s in SIZES:
                x = 570 + 30 + PEERS.index(p) * 340 / 3
                y = 60 + 300 - (100 * ratio_of(p, 'decrypt', s) - 40) / 60 * 300
                if not any(abs(cx - x) < 0.2 and abs(cy - y) < 0.2 for cx, cy in circles):
                    failures.append('no decrypt point for %d peers, %d B at (%.1f, %.1f)' % (p, s, x, y))
        texts = ' '.join(t.text or '' for t in root.iter(SVG + 'text'))
        for want in ('85 % at 1420 B', '75 % at 64 B', '100 000', 'recycled mode'):
            if want not in texts:
                failures.append('no "%s" in the labels' % want)
        # Only the cold mode: refused, said why.
        cold = [{**runs[0], 'rows': [x for x in runs[0]['rows'] if x['mode'] == 'cold']}]
        r, _ = run(plot, cold, tmp)
        if r.returncode == 0 or 'no recycled rows' not in r.stderr:
            failures.append('a cold-only run: exit %d, stderr %r' % (r.returncode, r.stderr))
    for f in failures:
        print('FAIL', f)
    print('%s: %d checks failed' % ('FAIL' if failures else 'PASS', len(failures)))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
