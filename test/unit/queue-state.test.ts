// The queue state's columns and totals against a plain model: any sequence of listings,
// updates and removed directories leaves the same entries, totals and oldest arrival,
// whatever slots were freed, reused or grown along the way.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { idArrivalTime, makeMessageId } from '../../src/spool/exim-id.js';
import { type Entry, QueueState } from '../../src/spool/queue-state.js';
import { F_D, F_H, F_J } from '../../src/spool/scan.js';

type M = Entry;

const NOW = 1_790_000_000;
const IDS = Array.from({ length: 40 }, (_, i) => makeMessageId(NOW - i * 37, i));
const SUBS = ['', 'a', 'b'];
const size = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 5000 }));
const op = fc.oneof(
  fc.record({
    kind: fc.constant('update' as const),
    sub: fc.constantFrom(...SUBS),
    id: fc.constantFrom(...IDS),
    patch: fc.record(
      {
        h: size,
        d: size,
        j: size,
        frozen: fc.boolean(),
        badHeader: fc.boolean(),
        sized: fc.boolean(),
        ino: fc.nat(),
        mtime: fc.nat(),
      },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    kind: fc.constant('listed' as const),
    sub: fc.constantFrom(...SUBS),
    id: fc.constantFrom(...IDS),
    header: fc.constantFrom('file' as const, 'odd' as const, null),
    data: fc.boolean(),
    journal: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('drop' as const), sub: fc.constantFrom(...SUBS) }),
);

function apply(model: Map<string, M>, o: fc.Infer<typeof op>): void {
  if (o.kind === 'drop') {
    for (const [k, m] of [...model]) if (m.sub === o.sub) model.delete(k);
    return;
  }
  const key = `${o.sub}/${o.id}`;
  if (o.kind === 'listed') {
    if (!o.header && !o.data && !o.journal) {
      // a listing never reports a message without files; the state would keep an empty slot
      return;
    }
    model.set(key, {
      sub: o.sub,
      id: o.id,
      h: o.header ? 0 : -1,
      d: o.data ? 0 : -1,
      j: o.journal ? 0 : -1,
      frozen: false,
      badHeader: o.header === 'odd',
      sized: o.header !== 'file',
      arrival: idArrivalTime(o.id),
      ino: 0,
      mtime: 0,
    });
    return;
  }
  const m: M = model.get(key) ?? {
    sub: o.sub,
    id: o.id,
    h: -1,
    d: -1,
    j: -1,
    frozen: false,
    badHeader: false,
    sized: true,
    arrival: idArrivalTime(o.id),
    ino: 0,
    mtime: 0,
  };
  Object.assign(m, o.patch);
  if (m.h < 0 && m.d < 0 && m.j < 0) model.delete(key);
  else model.set(key, m);
}

function run(q: QueueState, o: fc.Infer<typeof op>): void {
  if (o.kind === 'drop') q.dropSub(o.sub);
  else if (o.kind === 'listed') {
    if (o.header || o.data || o.journal)
      q.insertListed(o.sub, o.id, o.header, o.data, o.journal, idArrivalTime(o.id));
  } else q.update(o.sub, o.id, o.patch);
}

function totals(model: Map<string, M>) {
  const t = {
    messages: 0,
    bytes: 0,
    frozen: 0,
    badHeaders: 0,
    unsized: 0,
    dataWithoutHeader: 0,
    journalWithoutHeader: 0,
  };
  let oldest: number | null = null;
  for (const m of model.values()) {
    if (m.h >= 0) {
      t.messages++;
      t.bytes += m.h + Math.max(m.d, 0) + Math.max(m.j, 0);
      if (m.frozen) t.frozen++;
      if (m.badHeader) t.badHeaders++;
      if (!m.sized) t.unsized++;
      if (oldest === null || m.arrival < oldest) oldest = m.arrival;
    } else if (m.d >= 0) t.dataWithoutHeader++;
    else if (m.j >= 0) t.journalWithoutHeader++;
  }
  return { t, oldest };
}

describe('QueueState', () => {
  test('property: the same entries, totals and oldest arrival as a plain model', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const q = new QueueState();
        const model = new Map<string, M>();
        for (const o of ops) {
          run(q, o);
          apply(model, o);
        }
        const { t, oldest } = totals(model);
        assert.deepEqual(q.t, t);
        assert.equal(q.oldest(), oldest);
        assert.equal(q.size, model.size);
        for (const sub of SUBS)
          for (const id of IDS) {
            const m = model.get(`${sub}/${id}`);
            assert.deepEqual(q.get(sub, id), m);
            const have = m ? (m.h >= 0 ? F_H : 0) | (m.d >= 0 ? F_D : 0) | (m.j >= 0 ? F_J : 0) : 0;
            assert.equal(q.presence(sub, id), have);
          }
      }),
      { numRuns: 300 },
    );
  });

  test('a rescan marks what it saw; unseen() lists the rest with what the state holds', () => {
    const q = new QueueState();
    q.insertListed('a', IDS[0], 'file', true, false, idArrivalTime(IDS[0]));
    q.insertListed('a', IDS[1], null, true, false, idArrivalTime(IDS[1]));
    q.insertListed('', IDS[2], 'file', false, true, idArrivalTime(IDS[2]));
    assert.equal(q.presence('a', IDS[0], 7), F_H | F_D);
    assert.deepEqual(q.unseen(7), [
      { sub: 'a', id: IDS[1], have: F_D },
      { sub: '', id: IDS[2], have: F_H | F_J },
    ]);
    assert.deepEqual(
      q.unsizedMessages().map((u) => u.id),
      [IDS[0], IDS[2]],
    );
  });

  test('slots freed by removals are reused; growth past the first columns keeps every entry', () => {
    const q = new QueueState();
    const ids = Array.from({ length: 5000 }, (_, i) => makeMessageId(NOW - i, 1000 + i));
    for (const id of ids) q.update('x', id, { h: 10, d: 20 });
    for (const id of ids.slice(0, 2500)) q.update('x', id, { h: -1, d: -1 });
    for (const id of ids.slice(0, 2500)) q.update('y', id, { h: 1, d: 2 });
    assert.equal(q.size, 5000);
    assert.equal(q.t.messages, 5000);
    assert.equal(q.t.bytes, 2500 * 30 + 2500 * 3);
    assert.deepEqual(q.get('x', ids[4999])?.h, 10);
    assert.equal(q.get('x', ids[0]), undefined);
    assert.equal(q.oldest(), idArrivalTime(ids[4999]));
    q.dropSub('x');
    assert.equal(q.t.messages, 2500);
    assert.equal(q.oldest(), idArrivalTime(ids[2499]));
  });
});
