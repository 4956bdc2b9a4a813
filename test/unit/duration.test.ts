// Durations as operators write them, and how they are printed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatDuration, parseDuration } from '../../src/util/duration.js';

describe('parseDuration', () => {
  test('units and combinations', () => {
    const cases: [string | number, number][] = [
      ['30s', 30],
      ['5m', 300],
      ['1h', 3600],
      ['2d', 172800],
      ['250ms', 0.25],
      ['1h30m', 5400],
      ['1m30s', 90],
      ['1h1m1s', 3661],
      ['1.5h', 5400],
      ['0s', 0],
      ['10', 10],
      ['2.5', 2.5],
      [' 5m ', 300],
      ['1m500ms', 60.5],
      [0, 0],
      [45, 45],
      [0.5, 0.5],
    ];
    for (const [s, want] of cases) assert.equal(parseDuration(s), want, JSON.stringify(s));
  });

  test('everything else is NaN', () => {
    const bad: (string | number)[] = [
      '',
      ' ',
      's',
      'm5',
      '5x',
      '5 m',
      '1h 30m',
      '1h30',
      '-5s',
      '+5s',
      '5S',
      '1e3',
      '.5s',
      '5.s',
      'five',
      '5ms5',
      '30s!',
      -1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ];
    for (const s of bad) assert.equal(Number.isNaN(parseDuration(s)), true, JSON.stringify(s));
  });

  test('property: a sum of unit terms parses to its value', () => {
    const unit = fc.constantFrom(
      ['ms', 0.001],
      ['s', 1],
      ['m', 60],
      ['h', 3600],
      ['d', 86400],
    ) as fc.Arbitrary<[string, number]>;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 10_000 }), unit), { minLength: 1, maxLength: 5 }),
        (terms) => {
          const text = terms.map(([n, [u]]) => `${n}${u}`).join('');
          const want = terms.reduce((a, [n, [, f]]) => a + n * f, 0);
          const got = parseDuration(text);
          assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, want), `${text}: ${got} vs ${want}`);
        },
      ),
    );
  });
});

describe('formatDuration', () => {
  test('known values', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [59, '59s'],
      [59.4, '59s'],
      [59.6, '1m'],
      [60, '1m'],
      [90, '1m30s'],
      [3599, '59m59s'],
      [3600, '1h'],
      [3660, '1h1m'],
      [5400, '1h30m'],
      [86400, '24h'],
      [Number.POSITIVE_INFINITY, 'never'],
      [Number.NaN, 'never'],
    ];
    for (const [s, want] of cases) assert.equal(formatDuration(s), want, String(s));
  });

  test('property: below an hour, formatDuration then parseDuration gives the rounded seconds back', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3599 }), (s) => {
        assert.equal(parseDuration(formatDuration(s)), s);
      }),
    );
  });

  test('property: above an hour it is exact to the minute, rounded down', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3600, max: 10 * 86400 }), (s) => {
        assert.equal(parseDuration(formatDuration(s)), s - (s % 60));
      }),
    );
  });
});
