// Exim message ids: base-62, id syntax of both formats, arrival time, and the
// spool-name classification `exim -bpc` uses.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  BASE62,
  classifySpoolName,
  decodeBase62,
  encodeBase62,
  idArrivalTime,
  isMessageId,
  makeMessageId,
  splitDirOf,
} from '../../src/spool/exim-id.js';

const MAX6 = 62 ** 6;

// Written by Exim 4.96 on this machine (`exim4 -C <cfg> -bs`, then `-Mf`): the
// -H file's line 4 says 1796301659, the pid was 17899.
const REAL_496_ID = '1xZ67P-0004eh-2F';
const REAL_496_RECEIVED = 1796301659;
const REAL_496_PID = 17899;

describe('base 62', () => {
  test('alphabet is 0-9A-Za-z in that order', () => {
    assert.equal(BASE62.length, 62);
    assert.equal(BASE62, '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz');
  });

  test('known values', () => {
    assert.equal(decodeBase62('000000'), 0);
    assert.equal(decodeBase62('zzzzzz'), MAX6 - 1);
    assert.equal(decodeBase62('000010'), 62);
    assert.equal(decodeBase62('00000A'), 10);
    assert.equal(decodeBase62('00000a'), 36);
    assert.equal(decodeBase62('00000z'), 61);
    assert.equal(decodeBase62('100000'), 62 ** 5);
    assert.equal(encodeBase62(0, 6), '000000');
    assert.equal(encodeBase62(MAX6 - 1, 6), 'zzzzzz');
    assert.equal(encodeBase62(62, 6), '000010');
    assert.equal(encodeBase62(61, 2), '0z');
    assert.equal(encodeBase62(1_700_000_000, 6), '1r31eq');
  });

  test('characters outside the alphabet decode to NaN', () => {
    for (const s of ['00000-', '0000 0', 'ÿ00000', '0000_0', '00€000'])
      assert.equal(Number.isNaN(decodeBase62(s)), true, s);
  });

  test('property: decode(encode(n, 6)) === n for n in [0, 62^6)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX6 - 1 }), (n) => {
        const s = encodeBase62(n, 6);
        assert.equal(s.length, 6);
        assert.equal(decodeBase62(s), n);
      }),
      { numRuns: 2000 },
    );
  });

  test('property: encode is order-preserving (fixed width)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX6 - 1 }), fc.integer({ min: 0, max: MAX6 - 1 }), (a, b) => {
        const ea = encodeBase62(a, 6);
        const eb = encodeBase62(b, 6);
        assert.equal(Math.sign(a - b), ea < eb ? -1 : ea > eb ? 1 : 0);
      }),
    );
  });
});

describe('message ids', () => {
  test('valid ids of both formats', () => {
    const good = [
      REAL_496_ID,
      '000000-000000-00',
      'zzzzzz-zzzzzz-zz',
      '1xZ67P-0000000004e-2F0a',
      'zzzzzz-zzzzzzzzzzz-zzzz',
    ];
    for (const id of good) assert.equal(isMessageId(id), true, id);
  });

  test('wrong lengths, dash positions and characters are rejected', () => {
    const bad = [
      '',
      '1xZ67P-0004eh-2', // 15
      '1xZ67P-0004eh-2FF', // 17
      '1xZ67P0004eh-2F-', // 16, dashes at 12/15
      '1xZ67P-0004e-h2F', // 16, dash at 12
      '1xZ67P_0004eh-2F',
      '1xZ67P-0004eh_2F',
      '1xZ6!P-0004eh-2F',
      '1xZ67P-0004eh-2\u00ff',
      '1xZ67P-0000000004e-2F0', // 22
      '1xZ67P-0000000004e-2F0ab', // 24
      '1xZ67P-000000004e-2F0ab', // 23, dash at 17
      '1xZ67P-0000000004e2-F0a', // 23, dash at 19
      '1xZ67P-0000000-04e-2F0a', // 23, extra dash inside the pid
      '1xZ67P-0000000004e-2F-a',
    ];
    for (const id of bad) assert.equal(isMessageId(id), false, JSON.stringify(id));
  });

  test('makeMessageId makes valid ids of both formats with the arrival first', () => {
    for (const format of ['old', 'new'] as const) {
      const id = makeMessageId(REAL_496_RECEIVED, 12345, format);
      assert.equal(id.length, format === 'old' ? 16 : 23);
      assert.ok(isMessageId(id), id);
      assert.equal(id.slice(0, 6), '1xZ67P');
      assert.equal(idArrivalTime(id), REAL_496_RECEIVED);
    }
  });

  test('arrival time of a real Exim 4.96 id is the received time on line 4 of its -H file', () => {
    assert.equal(idArrivalTime(REAL_496_ID), REAL_496_RECEIVED);
    // the second field is the pid in base 62
    assert.equal(decodeBase62(REAL_496_ID.slice(7, 13)), REAL_496_PID);
  });

  test('property: idArrivalTime returns the arrival makeMessageId was given', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX6 - 1 }),
        fc.integer({ min: 0, max: 62 ** 6 - 1 }),
        fc.constantFrom('old' as const, 'new' as const),
        (arrival, seq, format) => {
          const id = makeMessageId(arrival, seq, format);
          assert.ok(isMessageId(id), id);
          assert.equal(idArrivalTime(id), arrival);
          assert.equal(splitDirOf(id), id[5]);
          assert.equal(splitDirOf(id), BASE62[arrival % 62]);
        },
      ),
    );
  });

  test('arrival time is NaN when the first six characters are not base 62, or missing', () => {
    assert.equal(Number.isNaN(idArrivalTime('1xZ6-P-0004eh-2F')), true, '1xZ6-P-0004eh-2F');
    assert.equal(Number.isNaN(idArrivalTime('hdr.1xZ67P-0004eh-2F')), true, 'hdr.1xZ67P-0004eh-2F');
    assert.equal(Number.isNaN(idArrivalTime('')), true, '');
    assert.equal(Number.isNaN(idArrivalTime('1xZ')), true, '1xZ');
  });

  test('split directory is the 6th character', () => {
    assert.equal(splitDirOf(REAL_496_ID), 'P');
    assert.equal(splitDirOf('1xZ676-0004TA-0O'), '6');
  });
});

describe('classifySpoolName (as `exim -bpc` counts)', () => {
  test('-H, -D, -J of both lengths', () => {
    assert.deepEqual(classifySpoolName(`${REAL_496_ID}-H`), { id: REAL_496_ID, kind: 'H' });
    assert.deepEqual(classifySpoolName(`${REAL_496_ID}-D`), { id: REAL_496_ID, kind: 'D' });
    assert.deepEqual(classifySpoolName(`${REAL_496_ID}-J`), { id: REAL_496_ID, kind: 'J' });
    const nid = '1xZ67P-0000000004e-2F0a';
    assert.deepEqual(classifySpoolName(`${nid}-H`), { id: nid, kind: 'H' });
    assert.deepEqual(classifySpoolName(`${nid}-D`), { id: nid, kind: 'D' });
    assert.deepEqual(classifySpoolName(`${nid}-J`), { id: nid, kind: 'J' });
  });

  test('any 18-character name ending in -H counts, whatever the characters before (checked with exim4 -bpc)', () => {
    // Exim 4.96 counted `abcdefghijklmnop-H` and `!!!!!!!!!!!!!!!!-H` as messages, not `...-h`
    assert.deepEqual(classifySpoolName('abcdefghijklmnop-H'), { id: 'abcdefghijklmnop', kind: 'H' });
    assert.deepEqual(classifySpoolName('!!!!!!!!!!!!!!!!-H'), { id: '!!!!!!!!!!!!!!!!', kind: 'H' });
    assert.deepEqual(classifySpoolName('!!!!!!!!!!!!!!!!!!!!!!!-H'), {
      id: '!!!!!!!!!!!!!!!!!!!!!!!',
      kind: 'H',
    });
  });

  test('everything else is null', () => {
    const names = [
      'hdr.xxx',
      `hdr.${REAL_496_ID}`,
      'hdr.12345',
      '1xZ67P-0004eh-2-H', // 17
      '1xZ67P-0004eh-2FF-H', // 19
      '1xZ67P-0000000004e-2F-H', // 23
      '1xZ67P-0000000004e-2F0ab-H', // 26
      `${REAL_496_ID}-h`,
      `${REAL_496_ID}-d`,
      `${REAL_496_ID}-K`,
      `${REAL_496_ID}_H`,
      `${REAL_496_ID}H`,
      `${REAL_496_ID}-H.tmp`,
      REAL_496_ID,
      '',
      '-H',
      'A',
    ];
    for (const n of names) assert.equal(classifySpoolName(n), null, JSON.stringify(n));
  });

  test('property: classification depends only on length and the last two characters', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (name) => {
        const c = classifySpoolName(name);
        const counted = (name.length === 18 || name.length === 25) && /-[HDJ]$/.test(name);
        assert.equal(c !== null, counted, JSON.stringify(name));
        if (c) {
          assert.equal(c.id + '-' + c.kind, name);
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.string({ minLength: 16, maxLength: 16 }), fc.constantFrom('H', 'D', 'J'), (id, k) => {
        assert.deepEqual(classifySpoolName(`${id}-${k}`), { id, kind: k });
      }),
      { numRuns: 300 },
    );
  });
});
