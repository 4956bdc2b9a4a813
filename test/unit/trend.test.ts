// Fill rate (least-squares slope over a sliding window) and time to full.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Trend, timeToFull } from '../../src/guard/trend.js';

const close = (a: number, b: number, eps = 1e-6) =>
  assert.ok(Math.abs(a - b) <= eps * Math.max(1, Math.abs(b)), `${a} ≉ ${b}`);

function series(tr: Trend, from: number, to: number, step: number, f: (t: number) => [number, number]): void {
  for (let t = from; t <= to + 1e-9; t += step) {
    const [bytes, inodes] = f(t);
    tr.add({ t, bytes, inodes });
  }
}

describe('Trend.slopes', () => {
  test('the slope of a linear series is its slope; negative when draining', () => {
    const tr = new Trend();
    series(tr, 1000, 1030, 1, (t) => [5e6 + 12_345 * (t - 1000), 900 - 3 * (t - 1000)]);
    const s = tr.slopes();
    assert.ok(s);
    close(s.bytes, 12_345);
    close(s.inodes, -3);
  });

  test('a flat series has slope 0', () => {
    const tr = new Trend();
    series(tr, 0, 10, 0.5, () => [42, 7]);
    assert.deepEqual(tr.slopes(), { bytes: 0, inodes: 0 });
  });

  test('least squares, not end points: one outlier at the end moves the slope a little', () => {
    const tr = new Trend();
    // slope 50 over t = 0..40, the last sample 400 too high: end points would say 60,
    // least squares says 50 + 400 * (40 - 20) / sum((t - 20)^2) = 50 + 8000 / 5740
    series(tr, 0, 40, 1, (t) => [1e6 + 50 * t + (t === 40 ? 400 : 0), 0]);
    close(tr.slopes()!.bytes, 50 + 8000 / 5740);
  });

  test('known least-squares value for an uneven series', () => {
    const tr = new Trend(60, 0);
    // points (0,0) (1,1) (2,4) (3,9): slope = 3
    for (const [t, y] of [
      [0, 0],
      [1, 1],
      [2, 4],
      [3, 9],
    ]) {
      tr.add({ t: 100 + t, bytes: y, inodes: -y });
    }
    const s = tr.slopes();
    assert.ok(s);
    close(s.bytes, 3);
    close(s.inodes, -3);
  });

  test('null with fewer than two samples or a span below minSpan', () => {
    const tr = new Trend(60, 2);
    assert.equal(tr.slopes(), null);
    tr.add({ t: 10, bytes: 0, inodes: 0 });
    assert.equal(tr.slopes(), null);
    tr.add({ t: 11, bytes: 100, inodes: 1 });
    tr.add({ t: 11.9, bytes: 190, inodes: 2 });
    assert.equal(tr.slopes(), null, 'span 1.9 s < 2 s');
    tr.add({ t: 12, bytes: 200, inodes: 2 });
    const s = tr.slopes();
    assert.ok(s, 'span 2 s');
    close(s.bytes, 100, 0.01);
  });

  test('the window drops samples older than windowSeconds', () => {
    const tr = new Trend(60, 2);
    // 60 s filling fast, then 60 s flat: after the second minute only the flat part counts
    series(tr, 0, 60, 1, (t) => [t * 1000, t]);
    close(tr.slopes()!.bytes, 1000);
    series(tr, 61, 121, 1, () => [60_000, 60]);
    assert.equal(tr.size, 61, 'samples from 61 to 121 s');
    assert.deepEqual(tr.slopes(), { bytes: 0, inodes: 0 });
  });

  test('after a long gap the single newest sample remains, and the slope is null', () => {
    const tr = new Trend(60, 2);
    series(tr, 0, 10, 1, (t) => [t, t]);
    tr.add({ t: 1000, bytes: 5, inodes: 5 });
    assert.equal(tr.size, 1);
    assert.equal(tr.slopes(), null);
  });

  test('samples closer than the resolution replace the newest one: storage stays bounded', () => {
    const tr = new Trend(60, 0, 1);
    for (let i = 0; i <= 1000; i++) tr.add({ t: i / 100, bytes: 3 * i, inodes: 0 });
    assert.ok(tr.size >= 10 && tr.size <= 22, `size ${tr.size} for 10 s at resolution 1 s`);
    close(tr.slopes()!.bytes, 300, 1e-3);
    const fine = new Trend(60, 0, 0.001);
    for (let i = 0; i <= 1000; i++) fine.add({ t: i / 100, bytes: 3 * i, inodes: 0 });
    assert.equal(fine.size, 1001);
  });

  test('the clock going backwards starts a new series', () => {
    const tr = new Trend(60, 2);
    series(tr, 1000, 1030, 1, (t) => [t * 10, t]);
    tr.add({ t: 500, bytes: 0, inodes: 0 });
    assert.equal(tr.size, 1);
    assert.equal(tr.slopes(), null);
    series(tr, 501, 510, 1, (t) => [(t - 500) * 7, 0]);
    const s = tr.slopes();
    assert.ok(s, 'slopes known again 10 s after the jump, not 500 s later');
    close(s.bytes, 7);
  });

  test('clear() forgets everything', () => {
    const tr = new Trend();
    series(tr, 0, 10, 1, (t) => [t, t]);
    tr.clear();
    assert.equal(tr.size, 0);
    assert.equal(tr.slopes(), null);
  });

  test('property: the slope of any linear series (with noise-free samples) is recovered', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        fc.double({ min: -1e3, max: 1e3, noNaN: true }),
        fc.integer({ min: 0, max: 1e9 }),
        fc.array(fc.double({ min: 0.2, max: 5, noNaN: true }), { minLength: 2, maxLength: 40 }),
        (a, b, start, gaps) => {
          const tr = new Trend(60, 2);
          let t = start;
          const t0 = start;
          tr.add({ t, bytes: 1e9, inodes: 1e5 });
          for (const g of gaps) {
            t += g;
            tr.add({ t, bytes: 1e9 + a * (t - t0), inodes: 1e5 + b * (t - t0) });
          }
          const s = tr.slopes();
          if (s === null) return; // span too short or everything out of the window
          close(s.bytes, a, 1e-4);
          close(s.inodes, b, 1e-4);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('timeToFull', () => {
  const both = { bytes: true, inodes: true };
  test('the smaller of the bytes and inodes predictions', () => {
    assert.equal(timeToFull({ bytes: 100, inodes: 1 }, 10_000, 1_000_000, both), 100);
    assert.equal(timeToFull({ bytes: 100, inodes: 10 }, 1e9, 500, both), 50);
  });

  test('+Inf when neither grows, or no slope yet', () => {
    assert.equal(timeToFull({ bytes: 0, inodes: 0 }, 1e9, 1e6, both), Number.POSITIVE_INFINITY);
    assert.equal(timeToFull({ bytes: -5, inodes: -1 }, 1e9, 1e6, both), Number.POSITIVE_INFINITY);
    assert.equal(timeToFull(null, 1, 1, both), Number.POSITIVE_INFINITY);
  });

  test('only the growing resource counts', () => {
    assert.equal(timeToFull({ bytes: -100, inodes: 2 }, 10, 100, both), 50);
    assert.equal(timeToFull({ bytes: 10, inodes: -2 }, 1000, 1, both), 100);
  });

  test('an unlimited resource (size or inode count 0) is not predicted', () => {
    assert.equal(timeToFull({ bytes: 100, inodes: 1 }, 0, 1000, { bytes: false, inodes: true }), 1000);
    assert.equal(timeToFull({ bytes: 100, inodes: 1 }, 1000, 0, { bytes: true, inodes: false }), 10);
    assert.equal(
      timeToFull({ bytes: 100, inodes: 1 }, 0, 0, { bytes: false, inodes: false }),
      Number.POSITIVE_INFINITY,
    );
  });

  test('already full: 0, never negative', () => {
    assert.equal(timeToFull({ bytes: 100, inodes: 0 }, 0, 10, both), 0);
    assert.equal(timeToFull({ bytes: 100, inodes: 0 }, -50, 10, both), 0);
  });

  test('from a Trend: 1 MB/s into 60 MB free is a minute', () => {
    const tr = new Trend();
    series(tr, 0, 30, 1, (t) => [t * 1e6, 1000]);
    close(timeToFull(tr.slopes(), 60e6, 1e6, both), 60);
  });
});
