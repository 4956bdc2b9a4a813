// The -H option parser: frozen detection behind ACL variables, tainted and
// quoted options, truncation, malformed files, and arbitrary bytes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { makeMessageId } from '../../src/spool/exim-id.js';
import { headerText } from '../../src/spool/fixture.js';
import { type HeaderResult, parseHeader } from '../../src/spool/header.js';

const b = (s: string) => Buffer.from(s, 'latin1');

function ok(r: HeaderResult, label = ''): Extract<HeaderResult, { ok: true }> {
  if (!r.ok) assert.fail(`${label}: expected ok, got ${JSON.stringify(r)}`);
  return r;
}

// Written by Exim 4.96 on this machine: `acl_not_smtp` set
// acl_m_long = "line one\n-frozen 12345\n--tainted 5\nend" and acl_c0 = "x". Not frozen.
const REAL_NOT_FROZEN =
  '1xZ676-0004TA-0O-H\nroot 0 0\n<a@b.test>\n1796301640 0\n-received_time_usec .121054\n' +
  '-received_time_complete 1796301640.123293\n-ident root\n-received_protocol local\n-aclc 0 1\nx\n' +
  '-aclm _long 38\nline one\n-frozen 12345\n--tainted 5\nend\n-body_linecount 1\n' +
  '-max_received_linelength 11\n-allow_unqualified_recipient\n-allow_unqualified_sender\n' +
  '-deliver_firsttime\n-tls_resumption A\nXX\n1\nc@d.test\n\n' +
  '150P Received: from root by t.test with local (Exim 4.96)\n\t(envelope-from <a@b.test>)\n' +
  '\tid 1xZ676-0004TA-0O\n\tfor c@d.test;\n\tThu, 03 Dec 2026 12:40:40 +0000\n012  Subject: hi\n' +
  '039I Message-Id: <E1xZ676-0004TA-0O@t.test>\n015F From: a@b.test\n038  Date: Thu, 03 Dec 2026 12:40:40 +0000\n';

// Written by Exim 4.96 over SMTP (`-bs`, so $sender_helo_name and $local_part are
// tainted: `--` options), then frozen with `exim -Mf`. acl_m_t is
// "rcpt bob\n-frozen 99\n--aclm x 3\n" (its value ends in a newline).
const REAL_FROZEN =
  '1xZ67P-0004eh-2F-H\nroot 0 0\n<s@x.test>\n1796301659 0\n-received_time_usec .699671\n' +
  '-received_time_complete 1796301659.704089\n--helo_name me.test\n-ident root\n' +
  '-received_protocol local-smtp\n--aclc _helo 7\nme.test\n--aclm _t 31\nrcpt bob\n-frozen 99\n' +
  '--aclm x 3\n\n-aclm _u 5\nplain\n-body_linecount 1\n-max_received_linelength 10\n' +
  '-allow_unqualified_recipient\n-allow_unqualified_sender\n-deliver_firsttime\n-frozen 1796301659\n' +
  '-tls_resumption A\nXX\n1\nbob@y.test\n\n173P Received: from root (helo=me.test)\n' +
  '\tby u.test with local-smtp (Exim 4.96)\n\t(envelope-from <s@x.test>)\n\tid 1xZ67P-0004eh-2F\n' +
  '\tfor bob@y.test;\n\tThu, 03 Dec 2026 12:40:59 +0000\n011  Subject: t\n' +
  '039I Message-Id: <E1xZ67P-0004eh-2F@u.test>\n015F From: s@x.test\n038  Date: Thu, 03 Dec 2026 12:40:59 +0000\n';

describe('parseHeader on real Exim 4.96 files', () => {
  test('not frozen, although an ACL variable holds a "-frozen 12345" line', () => {
    const r = ok(parseHeader(b(REAL_NOT_FROZEN)));
    assert.deepEqual(r.info, { frozen: false, received: 1796301640, id: '1xZ676-0004TA-0O' });
    assert.equal(r.consumed, REAL_NOT_FROZEN.indexOf('XX\n'));
  });

  test('frozen, found after tainted ACL variables that hold "-frozen 99" and a fake option', () => {
    const r = ok(parseHeader(b(REAL_FROZEN)));
    assert.deepEqual(r.info, {
      frozen: true,
      frozenSince: 1796301659,
      received: 1796301659,
      id: '1xZ67P-0004eh-2F',
    });
    assert.equal(r.consumed, REAL_FROZEN.indexOf('XX\n'));
  });

  test('the same files as Uint8Array views into a larger buffer', () => {
    const big = Buffer.concat([b('garbage before\n'), b(REAL_FROZEN), b('garbage after')]);
    const view = new Uint8Array(big.buffer, big.byteOffset + 15, REAL_FROZEN.length);
    assert.equal(ok(parseHeader(view)).info.frozenSince, 1796301659);
  });
});

describe('parseHeader on fixture headers', () => {
  const id = makeMessageId(1_700_000_000, 42);
  test('plain, frozen, frozen behind a long multi-line ACL value', () => {
    const plain = ok(parseHeader(b(headerText(id, { arrival: 1_700_000_000 }))));
    assert.deepEqual(plain.info, { frozen: false, received: 1_700_000_000, id });

    const frozen = ok(parseHeader(b(headerText(id, { arrival: 1_700_000_000, frozen: true }))));
    assert.deepEqual(frozen.info, { frozen: true, frozenSince: 1_700_000_001, received: 1_700_000_000, id });

    const acl = `${'x'.repeat(5000)}\n-frozen 5\n-deliver_firsttime\n${'-'.repeat(3000)}\n-frozen`;
    const t1 = headerText(id, { arrival: 1_700_000_000, aclValue: acl });
    assert.equal(ok(parseHeader(b(t1))).info.frozen, false);
    const t2 = headerText(id, { arrival: 1_700_000_000, aclValue: acl, frozen: true });
    assert.equal(ok(parseHeader(b(t2))).info.frozenSince, 1_700_000_001);
  });

  test('new-format id on line 1', () => {
    const nid = makeMessageId(1_700_000_000, 42, 'new');
    assert.equal(ok(parseHeader(b(headerText(nid, { arrival: 1_700_000_000 })))).info.id, nid);
  });
});

/** A -H file in Exim's layout up to and past the options. */
function header(opts: string[], id = '1xZ67P-0004eh-2F'): string {
  return `${id}-H\nexim 101 101\n<s@x.test>\n1796301659 0\n${opts.join('')}XX\n1\nr@y.test\n\n011  Subject: t\n`;
}
const aclVar = (prefix: string, kind: string, name: string, value: string) =>
  `${prefix}acl${kind} ${name} ${Buffer.byteLength(value, 'latin1')}\n${value}\n`;

describe('options', () => {
  test('tainted `--frozen` is the same option', () => {
    const r = ok(parseHeader(b(header(['-ident x\n', '--frozen 1796301700\n']))));
    assert.equal(r.info.frozen, true);
    assert.equal(r.info.frozenSince, 1796301700);
  });

  test('tainted ACL variables are skipped by their length', () => {
    const v = 'a\n-frozen 1\nb';
    const r = ok(
      parseHeader(b(header([aclVar('--', 'c', '_x', v), aclVar('--', 'm', '_y', v), '-ident x\n']))),
    );
    assert.equal(r.info.frozen, false);
  });

  test('quoted tainted ACL variables (`--(<lookup>)aclm`, Exim 4.97+) are skipped by their length', () => {
    // a value that looks like options, and the real -frozen after it
    const v = 'x\n-frozen 12\n-ident y';
    const r = ok(parseHeader(b(header([aclVar('--(pgsql)', 'm', '_q', v), '-frozen 1796301700\n']))));
    assert.equal(r.info.frozen, true);
    assert.equal(r.info.frozenSince, 1796301700);
    // a value that ends the options early if taken for an option line
    const w = 'plain text';
    const r2 = ok(parseHeader(b(header([aclVar('--(sqlite)', 'c', '_q', w), '-frozen 1796301701\n']))));
    assert.equal(r2.info.frozenSince, 1796301701);
    // not frozen although the value says so
    const r3 = ok(parseHeader(b(header([aclVar('--(pgsql)', 'm', '_q', v), '-ident z\n']))));
    assert.equal(r3.info.frozen, false);
  });

  test('old `-acl <n> <len>` variables', () => {
    const v = '-frozen 3\n';
    assert.equal(ok(parseHeader(b(header([`-acl 12 ${v.length}\n${v}\n`, '-local\n'])))).info.frozen, false);
    assert.equal(
      ok(parseHeader(b(header([`-acl 3 ${v.length}\n${v}\n`, '-frozen 1796301702\n'])))).info.frozenSince,
      1796301702,
    );
  });

  test('empty ACL value', () => {
    const r = ok(parseHeader(b(header([aclVar('-', 'm', '_e', ''), '-frozen 1796301703\n']))));
    assert.equal(r.info.frozenSince, 1796301703);
  });

  test('ACL value with 8-bit bytes: the length is in bytes', () => {
    const v = '\u00e9\u00ff\n-frozen 1\n\u0080';
    const r = ok(parseHeader(b(header([aclVar('--', 'm', '_8', v), '-ident x\n']))));
    assert.equal(r.info.frozen, false);
  });

  test('-frozen without a usable time is frozen, with no time', () => {
    const r = ok(parseHeader(b(header(['-frozen\n']))));
    assert.equal(r.info.frozen, true);
    assert.equal(r.info.frozenSince, undefined);
    const r2 = ok(parseHeader(b(header(['-frozen abc\n']))));
    assert.equal(r2.info.frozen, true);
    assert.equal(r2.info.frozenSince, undefined);
  });

  test('options whose values say frozen are not -frozen', () => {
    const r = ok(
      parseHeader(b(header(['-ident -frozen 7\n', '-helo_name frozen\n', '-host_name frozen.example\n']))),
    );
    assert.equal(r.info.frozen, false);
  });

  test('a malformed ACL option is an error, not a guess', () => {
    const r = parseHeader(b(header(['-aclm _x\n', 'abc\n'])));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.incomplete, false);
    const r2 = parseHeader(b(header(['-aclc _x 1a\n', 'abc\n'])));
    assert.equal(r2.ok, false);
    const r3 = parseHeader(b(header(['--(pgsqlaclm _x 3\n', 'abc\n', '-frozen 1\n'])));
    assert.equal(r3.ok, false);
    assert.match(!r3.ok ? r3.error : '', /malformed option/);
  });
});

describe('truncated and malformed files', () => {
  test('every cut inside the options: incomplete when eof=false, an error when eof=true', () => {
    const end = REAL_FROZEN.indexOf('XX\n');
    const full = b(REAL_FROZEN);
    for (let cut = 0; cut <= end; cut++) {
      const part = full.subarray(0, cut);
      const more = parseHeader(part, false);
      assert.equal(more.ok, false, `cut ${cut}`);
      assert.equal(!more.ok && more.incomplete, true, `cut ${cut}: ${JSON.stringify(more)}`);
      const last = parseHeader(part, true);
      assert.equal(last.ok, false, `cut ${cut}`);
      assert.equal(!last.ok && last.incomplete, false, `cut ${cut}`);
      assert.equal(typeof (!last.ok && last.error), 'string');
    }
    // one byte past the options is enough, whatever eof says
    for (const eof of [false, true]) {
      const r = ok(parseHeader(full.subarray(0, end + 1), eof), `eof ${eof}`);
      assert.equal(r.info.frozenSince, 1796301659);
      assert.equal(r.consumed, end);
    }
  });

  test('truncated inside an ACL value mentions it', () => {
    const cut = REAL_FROZEN.indexOf('rcpt bob') + 3;
    const r = parseHeader(b(REAL_FROZEN.slice(0, cut)), false);
    assert.deepEqual(r, { ok: false, incomplete: true, error: 'truncated in an ACL variable' });
    // the whole value but not the newline after it
    const end = REAL_FROZEN.indexOf('rcpt bob') + 31;
    assert.equal(REAL_FROZEN.slice(end, end + 12), '\n-aclm _u 5\n');
    assert.deepEqual(parseHeader(b(REAL_FROZEN.slice(0, end)), false), {
      ok: false,
      incomplete: true,
      error: 'truncated in an ACL variable',
    });
  });

  test('malformed line 4', () => {
    for (const l4 of ['abc 0', '1796301659', '1796301659 x', ' 1796301659 0', '1796301659 0 1', '']) {
      const t = `1xZ67P-0004eh-2F-H\nroot 0 0\n<a@b>\n${l4}\n-frozen 1\nXX\n`;
      for (const eof of [true, false]) {
        const r = parseHeader(b(t), eof);
        assert.equal(r.ok, false, l4);
        assert.equal(!r.ok && r.incomplete, false, `${l4} eof=${eof}`);
        assert.match(!r.ok ? r.error : '', /line 4/);
      }
    }
  });

  test('line 1 that is not "<id>-H"', () => {
    for (const eof of [true, false]) {
      const r = parseHeader(b('1xZ67P-0004eh-2F-D\nroot 0 0\n<a@b>\n1 0\n-frozen 1\nXX\n'), eof);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.incomplete, false);
      assert.match(!r.ok ? r.error : '', /line 1/);
    }
  });

  test('garbage and empty input', () => {
    for (const g of ['', '\n', '\n\n\n\n\n', 'hello', '\x00\x00\x00\x00', '-H\n\n\n\n', 'x-H\n\n\n1 0\n']) {
      const r = parseHeader(b(g), true);
      assert.equal(r.ok, false, JSON.stringify(g));
    }
    assert.equal(parseHeader(new Uint8Array(0), false).ok, false);
    assert.equal((parseHeader(new Uint8Array(0), false) as { incomplete: boolean }).incomplete, true);
  });

  test('property: arbitrary bytes never throw, and a result has a consistent shape', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, eof) => {
        const r = parseHeader(bytes, eof);
        if (r.ok) {
          assert.ok(r.consumed >= 0 && r.consumed <= bytes.length, 'consumed in range');
          assert.equal(typeof r.info.frozen, 'boolean');
        } else {
          assert.equal(typeof r.error, 'string');
          if (eof) assert.equal(r.incomplete, false, 'never incomplete at eof');
        }
      }),
      { numRuns: 1500 },
    );
    // arbitrary bytes after a valid prefix, so the options loop is exercised
    const prefix = b('1xZ67P-0004eh-2F-H\nroot 0 0\n<a@b>\n1796301659 0\n-');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, eof) => {
        const buf = Buffer.concat([prefix, bytes]);
        const r = parseHeader(buf, eof);
        if (!r.ok && eof) assert.equal(r.incomplete, false);
      }),
      { numRuns: 1500 },
    );
  });
});

describe('property: generated headers with random ACL variables', () => {
  const latin1 = fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u).toString('latin1'));
  // values that look like options: lines starting with -frozen, --aclm, -acl
  const tricky = fc
    .array(
      fc.oneof(
        latin1,
        fc.constantFrom('-frozen 123', '--frozen 5', '-frozen', '-aclm _x 3', '--aclc _y 100', 'XX', '', '-'),
      ),
      { maxLength: 6 },
    )
    .map((lines) => lines.join('\n'));
  const variable = fc.record({
    prefix: fc.constantFrom('-', '--', '--(pgsql)', '--(sqlite)'),
    kind: fc.constantFrom('c', 'm'),
    name: fc.stringMatching(/^(_[a-z0-9_]{1,10}|[0-9])$/),
    value: tricky,
  });
  const plainOpt = fc.constantFrom(
    '-ident exim\n',
    '--helo_name me.test\n',
    '-received_protocol esmtp\n',
    '-body_linecount 1\n',
    '-deliver_firsttime\n',
    '-host_address [127.0.0.1]:4242\n',
    '-tls_resumption A\n',
  );
  const opt = fc.oneof(
    variable.map((v) => aclVar(v.prefix, v.kind, v.name, v.value)),
    plainOpt,
  );
  const spec = fc.record({
    before: fc.array(opt, { maxLength: 6 }),
    after: fc.array(opt, { maxLength: 4 }),
    frozen: fc.boolean(),
    tainted: fc.boolean(),
    at: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  });
  const build = (s: { before: string[]; after: string[]; frozen: boolean; tainted: boolean; at: number }) =>
    header([...s.before, ...(s.frozen ? [`${s.tainted ? '--' : '-'}frozen ${s.at}\n`] : []), ...s.after]);

  test('frozen and its time are found exactly', () => {
    fc.assert(
      fc.property(spec, (s) => {
        const text = build(s);
        const r = ok(parseHeader(b(text)), JSON.stringify(text));
        assert.equal(r.info.frozen, s.frozen, JSON.stringify(text));
        assert.equal(r.info.frozenSince, s.frozen ? s.at : undefined);
        assert.equal(r.info.received, 1796301659);
        assert.equal(r.consumed, text.lastIndexOf('XX\n1\nr@y.test\n'));
      }),
      { numRuns: 800 },
    );
  });

  test('a prefix is incomplete (eof=false) or gives the same answer as the whole file', () => {
    fc.assert(
      fc.property(spec, fc.double({ min: 0, max: 1, noNaN: true }), (s, f) => {
        const full = b(build(s));
        const cut = Math.floor(f * full.length);
        const r = parseHeader(full.subarray(0, cut), false);
        if (r.ok) {
          assert.equal(r.info.frozen, s.frozen);
          assert.equal(r.info.frozenSince, s.frozen ? s.at : undefined);
        } else assert.equal(r.incomplete, true, `cut ${cut}: ${r.error}`);
      }),
      { numRuns: 800 },
    );
  });
});
