// The flag file's one line: `reasons=<a,b> since=<unix seconds>[ until=<unix seconds>]`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DEFER_REASONS, type DeferReason } from '../../src/config.js';
import { formatFlag, parseFlag } from '../../src/guard/flag.js';

describe('formatFlag / parseFlag', () => {
  test('the format of the spec', () => {
    assert.equal(
      formatFlag({ reasons: ['bytes', 'queue'], since: 1800000000, until: null }),
      'reasons=bytes,queue since=1800000000\n',
    );
    assert.equal(
      formatFlag({ reasons: ['manual'], since: 1800000000, until: 1800000600 }),
      'reasons=manual since=1800000000 until=1800000600\n',
    );
    assert.deepEqual(parseFlag('reasons=manual,bytes since=1800000000 until=1800000600\n'), {
      reasons: ['manual', 'bytes'],
      since: 1800000000,
      until: 1800000600,
    });
  });

  test('since is whole unix seconds even when the state holds a fraction, and survives a round trip', () => {
    // the policy stamps `since` with now = Date.now() / 1000
    const line = formatFlag({ reasons: ['bytes'], since: 1800000000.731, until: null });
    assert.equal(line, 'reasons=bytes since=1800000000\n');
    assert.equal(parseFlag(line).since, 1800000000);
    assert.equal(
      formatFlag({ reasons: ['manual'], since: 1800000000.2, until: 1800000600 }),
      'reasons=manual since=1800000000 until=1800000600\n',
    );
  });

  test('no since: now', () => {
    const before = Math.floor(Date.now() / 1000);
    const p = parseFlag(formatFlag({ reasons: [], since: null, until: null }));
    const after = Math.floor(Date.now() / 1000);
    assert.ok(p.since !== null && p.since >= before && p.since <= after, String(p.since));
    assert.deepEqual(p.reasons, []);
  });

  test('tolerant reading: unknown reasons and keys, junk, empty', () => {
    assert.deepEqual(parseFlag('reasons=bytes,bogus,,memory since=12 color=red junk\n'), {
      reasons: ['bytes', 'memory'],
      since: 12,
      until: null,
    });
    assert.deepEqual(parseFlag(''), { reasons: [], since: null, until: null });
    assert.deepEqual(parseFlag('since=abc until=-5 reasons='), { reasons: [], since: null, until: null });
    assert.deepEqual(parseFlag('  since=7\n\n reasons=inodes  '), {
      reasons: ['inodes'],
      since: 7,
      until: null,
    });
  });

  test('property: round trip', () => {
    fc.assert(
      fc.property(
        fc.subarray(DEFER_REASONS as DeferReason[]),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: null }),
        (reasons, since, until) => {
          const line = formatFlag({ reasons, since, until });
          assert.match(line, /^reasons=[a-z_,]* since=\d+( until=\d+)?\n$/);
          assert.deepEqual(parseFlag(line), { reasons, since, until });
        },
      ),
    );
  });
});
