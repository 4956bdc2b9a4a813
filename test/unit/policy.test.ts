// The defer decision: enter reasons, hysteresis, min hold, manual overrides,
// unobservable spools, restarts, and properties over arbitrary inputs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { DeferReason } from '../../src/config.js';
import {
  type DeferState,
  decide,
  enterReasons,
  INITIAL_STATE,
  type Inputs,
  type Override,
  releaseBlockers,
  type Thresholds,
} from '../../src/guard/policy.js';

const GiB = 2 ** 30;
const C: Thresholds = {
  defer: {
    usedBytesRatio: 0.8,
    usedInodesRatio: 0.8,
    queueMessages: 1000,
    timeToFullSeconds: 300,
    memoryAvailableBytes: 256 * 2 ** 20,
  },
  release: { usedBytesRatio: 0.6, usedInodesRatio: 0.6, queueMessages: 500 },
  minDeferSeconds: 60,
};
const CALM: Inputs = {
  usedBytesRatio: 0.1,
  usedInodesRatio: 0.1,
  queueMessages: 10,
  timeToFullSeconds: Number.POSITIVE_INFINITY,
  memoryAvailableBytes: 8 * GiB,
  observable: true,
};
const calm = (o: Partial<Inputs> = {}): Inputs => ({ ...CALM, ...o });
const T0 = 1_800_000_000;
const active = (reasons: DeferReason[], since = T0, thresholdSince: number | null = since): DeferState => ({
  active: true,
  reasons,
  since,
  thresholdSince,
});
const on = (until: number | null, setAt = T0): Override => ({ mode: 'on', until, setAt });
const off = (until: number, setAt = T0): Override => ({ mode: 'off', until, setAt });

describe('entering', () => {
  const cases: [string, Partial<Inputs>, DeferReason][] = [
    ['bytes', { usedBytesRatio: 0.85 }, 'bytes'],
    ['bytes exactly at the line', { usedBytesRatio: 0.8 }, 'bytes'],
    ['inodes', { usedInodesRatio: 0.9 }, 'inodes'],
    ['queue', { queueMessages: 1000 }, 'queue'],
    ['time_to_full', { timeToFullSeconds: 299 }, 'time_to_full'],
    ['time_to_full when already full', { timeToFullSeconds: 0 }, 'time_to_full'],
    ['memory', { memoryAvailableBytes: 256 * 2 ** 20 - 1 }, 'memory'],
  ];
  for (const [name, o, reason] of cases) {
    test(`enters on ${name}`, () => {
      const d = decide(calm(o), C, INITIAL_STATE, null, T0);
      assert.deepEqual(d.state, { active: true, reasons: [reason], since: T0, thresholdSince: T0 });
      assert.equal(d.entered, true);
      assert.equal(d.released, false);
      assert.equal(d.override, null);
      assert.equal(d.overrideExpired, false);
    });
  }

  test('just below every line: nothing', () => {
    const d = decide(
      calm({
        usedBytesRatio: 0.7999,
        usedInodesRatio: 0.7999,
        queueMessages: 999,
        timeToFullSeconds: 300,
        memoryAvailableBytes: 256 * 2 ** 20,
      }),
      C,
      INITIAL_STATE,
      null,
      T0,
    );
    assert.deepEqual(d.state, INITIAL_STATE);
    assert.equal(d.entered, false);
  });

  test('several reasons at once, in a fixed order', () => {
    const d = decide(
      calm({
        memoryAvailableBytes: 1,
        timeToFullSeconds: 5,
        queueMessages: 5000,
        usedInodesRatio: 0.95,
        usedBytesRatio: 0.95,
      }),
      C,
      INITIAL_STATE,
      null,
      T0,
    );
    assert.deepEqual(d.state.reasons, ['bytes', 'inodes', 'queue', 'time_to_full', 'memory']);
  });

  test('a disabled line (null) never enters; an unknown figure (unlimited tmpfs) never enters', () => {
    const none: Thresholds = {
      ...C,
      defer: {
        usedBytesRatio: null,
        usedInodesRatio: null,
        queueMessages: null,
        timeToFullSeconds: null,
        memoryAvailableBytes: null,
      },
    };
    const full = calm({
      usedBytesRatio: 1,
      usedInodesRatio: 1,
      queueMessages: 1e9,
      timeToFullSeconds: 0,
      memoryAvailableBytes: 0,
    });
    assert.deepEqual(enterReasons(full, none), []);
    const unknown = calm({
      usedBytesRatio: null,
      usedInodesRatio: null,
      queueMessages: null,
      memoryAvailableBytes: null,
    });
    assert.deepEqual(enterReasons(unknown, C), []);
    assert.deepEqual(enterReasons(calm({ usedBytesRatio: null, memoryAvailableBytes: 0 }), C), ['memory']);
  });

  test('staying in: since and thresholdSince are kept, reasons follow what holds', () => {
    const prev = active(['bytes'], T0 - 30);
    const d = decide(calm({ usedBytesRatio: 0.9, queueMessages: 2000 }), C, prev, null, T0);
    assert.deepEqual(d.state, {
      active: true,
      reasons: ['bytes', 'queue'],
      since: T0 - 30,
      thresholdSince: T0 - 30,
    });
    assert.equal(d.entered, false);
  });
});

describe('hysteresis and the minimum hold', () => {
  test('between release and enter lines defer mode stays on; reasons are the resources above their release line', () => {
    const prev = active(['bytes', 'inodes'], T0 - 1000);
    const d = decide(calm({ usedBytesRatio: 0.7, usedInodesRatio: 0.61 }), C, prev, null, T0);
    assert.deepEqual(d.state, { ...prev, reasons: ['bytes', 'inodes'] });
    assert.equal(d.released, false);
    const d2 = decide(calm({ usedBytesRatio: 0.5, usedInodesRatio: 0.61 }), C, prev, null, T0);
    assert.deepEqual(d2.state.reasons, ['inodes']);
    assert.equal(d2.state.active, true);
    // a resource that entered nothing still blocks the release while above its line
    const d3 = decide(calm({ queueMessages: 501 }), C, active(['memory'], T0 - 1000), null, T0);
    assert.deepEqual(d3.state.reasons, ['queue']);
    assert.equal(d3.state.active, true);
  });

  test('released when every resource is at or below its release line and the hold has passed', () => {
    const prev = active(['bytes'], T0 - 1000);
    const d = decide(
      calm({ usedBytesRatio: 0.6, usedInodesRatio: 0.6, queueMessages: 500 }),
      C,
      prev,
      null,
      T0,
    );
    assert.deepEqual(d.state, INITIAL_STATE);
    assert.equal(d.released, true);
    assert.equal(d.entered, false);
  });

  test('min_defer_seconds holds defer mode after the pressure is gone, counted from the threshold', () => {
    const entered = decide(calm({ usedBytesRatio: 0.9 }), C, INITIAL_STATE, null, T0).state;
    for (const dt of [1, 30, 59.9]) {
      const d = decide(CALM, C, entered, null, T0 + dt);
      assert.equal(d.state.active, true, `at +${dt}s`);
      assert.deepEqual(d.state.reasons, ['bytes'], 'the reason that entered is kept while holding');
      assert.equal(d.released, false);
    }
    const d = decide(CALM, C, entered, null, T0 + 60);
    assert.equal(d.state.active, false);
    assert.equal(d.released, true);
    // min 0: released at once
    const d0 = decide(CALM, { ...C, minDeferSeconds: 0 }, entered, null, T0);
    assert.equal(d0.released, true);
  });

  test('entered by time_to_full or memory: no release line, so only the hold', () => {
    const e = decide(calm({ timeToFullSeconds: 10 }), C, INITIAL_STATE, null, T0).state;
    assert.deepEqual(decide(CALM, C, e, null, T0 + 59).state.reasons, ['time_to_full']);
    assert.equal(decide(CALM, C, e, null, T0 + 60).released, true);
    const m = decide(calm({ memoryAvailableBytes: 1 }), C, INITIAL_STATE, null, T0).state;
    assert.equal(decide(CALM, C, m, null, T0 + 59).state.active, true);
    assert.equal(decide(CALM, C, m, null, T0 + 61).state.active, false);
  });

  test('a whole incident, step by step', () => {
    const steps: [number, Partial<Inputs>, boolean, DeferReason[]][] = [
      [0, {}, false, []],
      [10, { usedBytesRatio: 0.82 }, true, ['bytes']],
      [20, { usedBytesRatio: 0.95, timeToFullSeconds: 40 }, true, ['bytes', 'time_to_full']],
      [40, { usedBytesRatio: 0.75 }, true, ['bytes']],
      [80, { usedBytesRatio: 0.65 }, true, ['bytes']],
      [90, { usedBytesRatio: 0.55 }, false, []],
      [95, { usedBytesRatio: 0.7 }, false, []], // in the band but not entered: stays off
      [100, { usedBytesRatio: 0.8 }, true, ['bytes']],
      [110, { usedBytesRatio: 0.1 }, true, ['bytes']], // held: entered 10 s ago
      [160, { usedBytesRatio: 0.1 }, false, []],
    ];
    let s = INITIAL_STATE;
    let transitions = 0;
    for (const [t, o, act, reasons] of steps) {
      const d = decide(calm(o), C, s, null, T0 + t);
      assert.equal(d.state.active, act, `t=${t}`);
      assert.deepEqual(d.state.reasons, reasons, `t=${t}`);
      if (d.entered) transitions++;
      s = d.state;
    }
    assert.equal(transitions, 2);
  });
});

describe('manual overrides', () => {
  test('on with a TTL: active with reason manual, then ends at once when it expires', () => {
    const ov = on(T0 + 600);
    const d = decide(CALM, C, INITIAL_STATE, ov, T0);
    assert.deepEqual(d.state, { active: true, reasons: ['manual'], since: T0, thresholdSince: null });
    assert.equal(d.entered, true);
    assert.equal(d.override, ov);
    const mid = decide(CALM, C, d.state, ov, T0 + 599);
    assert.equal(mid.state.active, true);
    assert.equal(mid.overrideExpired, false);
    // the TTL is up: the min hold (60 s) does not apply to the operator's defer
    const end = decide(CALM, C, mid.state, ov, T0 + 600);
    assert.equal(end.overrideExpired, true);
    assert.equal(end.override, null);
    assert.equal(end.state.active, false);
    assert.equal(end.released, true);
  });

  test('expiry while a threshold holds: stays on for the threshold', () => {
    const ov = on(T0 + 100);
    const s1 = decide(CALM, C, INITIAL_STATE, ov, T0).state;
    const s2 = decide(calm({ usedBytesRatio: 0.9 }), C, s1, ov, T0 + 50);
    assert.deepEqual(s2.state, {
      active: true,
      reasons: ['manual', 'bytes'],
      since: T0,
      thresholdSince: T0 + 50,
    });
    const s3 = decide(calm({ usedBytesRatio: 0.9 }), C, s2.state, ov, T0 + 100);
    assert.equal(s3.overrideExpired, true);
    assert.deepEqual(s3.state, { active: true, reasons: ['bytes'], since: T0, thresholdSince: T0 + 50 });
    assert.equal(s3.released, false);
    assert.equal(s3.entered, false);
    // and released by the usual rules
    assert.equal(decide(CALM, C, s3.state, null, T0 + 109).state.active, true);
    assert.equal(decide(CALM, C, s3.state, null, T0 + 110).state.active, false);
  });

  test('expiry while a threshold-entered defer is in the hysteresis band: stays on', () => {
    const s = active(['manual', 'bytes'], T0 - 1000);
    const d = decide(calm({ usedBytesRatio: 0.7 }), C, s, on(T0), T0);
    assert.equal(d.overrideExpired, true);
    assert.deepEqual(d.state.reasons, ['bytes']);
    assert.equal(d.state.active, true);
  });

  test('auto after a threshold came and went during the override: ends at once, without the min hold', () => {
    const ov = on(null);
    let s = decide(CALM, C, INITIAL_STATE, ov, T0).state;
    s = decide(calm({ usedBytesRatio: 0.85 }), C, s, ov, T0 + 10).state;
    assert.deepEqual(s.reasons, ['manual', 'bytes']);
    s = decide(CALM, C, s, ov, T0 + 20).state;
    assert.deepEqual(s, { active: true, reasons: ['manual'], since: T0, thresholdSince: T0 + 10 });
    const d = decide(CALM, C, s, null, T0 + 30); // `auto`: bytes is far below its release line
    assert.equal(d.released, true);
    // still in the band at `auto`: the threshold holds it, and then the usual rules apply
    const b = decide(calm({ usedBytesRatio: 0.7 }), C, s, null, T0 + 30);
    assert.deepEqual(b.state.reasons, ['bytes']);
    assert.equal(decide(CALM, C, b.state, null, T0 + 69).state.active, true);
    assert.equal(decide(CALM, C, b.state, null, T0 + 70).state.active, false);
  });

  test('on until auto holds for ever; auto (no override) ends it at once', () => {
    const ov = on(null);
    let s = decide(CALM, C, INITIAL_STATE, ov, T0).state;
    s = decide(CALM, C, s, ov, T0 + 86400 * 365).state;
    assert.deepEqual(s, { active: true, reasons: ['manual'], since: T0, thresholdSince: null });
    const d = decide(CALM, C, s, null, T0 + 86400 * 365 + 1);
    assert.equal(d.released, true);
    assert.equal(d.overrideExpired, false);
  });

  test('on during a threshold defer keeps its since', () => {
    const s = active(['bytes'], T0 - 10);
    const d = decide(calm({ usedBytesRatio: 0.9 }), C, s, on(null), T0);
    assert.deepEqual(d.state, {
      active: true,
      reasons: ['manual', 'bytes'],
      since: T0 - 10,
      thresholdSince: T0 - 10,
    });
    assert.equal(d.entered, false);
  });

  test('off forces acceptance even above every enter line', () => {
    const worst = calm({
      usedBytesRatio: 1,
      usedInodesRatio: 1,
      queueMessages: 1e9,
      timeToFullSeconds: 0,
      memoryAvailableBytes: 0,
    });
    const d = decide(worst, C, INITIAL_STATE, off(T0 + 60), T0);
    assert.deepEqual(d.state, INITIAL_STATE);
    assert.equal(d.entered, false);
    const r = decide(worst, C, active(['bytes'], T0 - 5), off(T0 + 60), T0);
    assert.equal(r.state.active, false);
    assert.equal(r.released, true, 'releases at once, min hold or not');
    // unobservable: off still wins
    assert.equal(
      decide({ ...worst, observable: false }, C, active(['bytes']), off(T0 + 60), T0).state.active,
      false,
    );
    // when off expires, the thresholds take over at once
    const e = decide(worst, C, INITIAL_STATE, off(T0 + 60), T0 + 60);
    assert.equal(e.overrideExpired, true);
    assert.equal(e.entered, true);
    assert.deepEqual(e.state.reasons, ['bytes', 'inodes', 'queue', 'time_to_full', 'memory']);
  });
});

describe('an unobservable spool keeps its state', () => {
  const blind: Inputs = { ...CALM, observable: false };
  const blindFull: Inputs = { ...calm({ usedBytesRatio: 1 }), observable: false };

  test('active stays active, inactive stays inactive, whatever the stale figures say', () => {
    const s = active(['bytes'], T0 - 5000);
    const d = decide(blind, C, s, null, T0);
    assert.deepEqual(d.state, s);
    assert.equal(d.released, false);
    const d2 = decide(blindFull, C, INITIAL_STATE, null, T0);
    assert.deepEqual(d2.state, INITIAL_STATE);
    assert.equal(d2.entered, false);
  });

  test('a manual on still holds; its expiry ends a defer that only it held', () => {
    const d = decide(blind, C, INITIAL_STATE, on(T0 + 10), T0);
    assert.deepEqual(d.state, { active: true, reasons: ['manual'], since: T0, thresholdSince: null });
    const e = decide(blind, C, d.state, on(T0 + 10), T0 + 10);
    assert.equal(e.overrideExpired, true);
    assert.equal(e.state.active, false);
    // but not one a threshold held as well
    const both = active(['manual', 'bytes'], T0 - 100);
    const f = decide(blind, C, both, on(T0), T0);
    assert.deepEqual(f.state, { ...both, reasons: ['bytes'] });
  });
});

describe('restart in the middle of an incident', () => {
  // what the guard builds from a flag file `reasons=bytes since=<T0>`: thresholdSince = since
  test('not released before the min hold has passed since the flag was written', () => {
    const prev = active(['bytes'], T0);
    assert.equal(decide(CALM, C, prev, null, T0 + 10).state.active, true);
    assert.equal(decide(CALM, C, prev, null, T0 + 59).state.active, true);
    assert.equal(decide(CALM, C, prev, null, T0 + 60).released, true);
  });

  test('not released while a resource is above its release line, however old the flag', () => {
    const prev = active(['bytes'], T0 - 86400);
    const d = decide(calm({ usedBytesRatio: 0.7 }), C, prev, null, T0);
    assert.equal(d.state.active, true);
    assert.equal(d.state.since, T0 - 86400);
    assert.equal(decide(calm({ usedBytesRatio: 0.6 }), C, prev, null, T0).released, true);
  });

  test('a flag with unknown reasons (unreadable) is held like a threshold', () => {
    const prev = active([], T0);
    assert.equal(decide(CALM, C, prev, null, T0 + 30).state.active, true);
    assert.equal(decide(CALM, C, prev, null, T0 + 60).state.active, false);
  });

  test('a manual flag whose override is gone ends at once; one whose override survives holds', () => {
    const prev = active(['manual'], T0, null);
    assert.equal(decide(CALM, C, prev, null, T0 + 1).released, true);
    assert.equal(decide(CALM, C, prev, on(T0 + 100), T0 + 1).state.active, true);
  });
});

describe('properties', () => {
  const ratio = fc.oneof(fc.constant(null), fc.double({ min: 0, max: 1, noNaN: true }));
  const inputs: fc.Arbitrary<Inputs> = fc.record({
    usedBytesRatio: ratio,
    usedInodesRatio: ratio,
    queueMessages: fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 3000 })),
    timeToFullSeconds: fc.oneof(
      fc.constant(Number.POSITIVE_INFINITY),
      fc.double({ min: 0, max: 1000, noNaN: true }),
    ),
    memoryAvailableBytes: fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 1024 * 2 ** 20 })),
    observable: fc.boolean(),
  });
  const now = fc.integer({ min: T0, max: T0 + 10_000 });
  const reasons = fc.subarray([
    'bytes',
    'inodes',
    'queue',
    'time_to_full',
    'memory',
    'manual',
  ] as DeferReason[]);
  const state: fc.Arbitrary<DeferState> = fc.oneof(
    fc.constant(INITIAL_STATE),
    fc
      .record({
        reasons,
        since: fc.integer({ min: T0 - 10_000, max: T0 }),
        threshold: fc.option(fc.integer({ min: 0, max: 5000 }), { nil: null }),
      })
      .map((r) => ({
        active: true,
        reasons: r.reasons,
        since: r.since,
        thresholdSince: r.threshold === null ? null : r.since + r.threshold,
      })),
  );
  const override: fc.Arbitrary<Override | null> = fc.oneof(
    fc.constant(null),
    fc.record({
      mode: fc.constant('on' as const),
      until: fc.option(fc.integer({ min: T0 - 100, max: T0 + 20_000 }), { nil: null }),
      setAt: fc.constant(T0 - 100),
    }),
    fc.record({
      mode: fc.constant('off' as const),
      until: fc.integer({ min: T0 - 100, max: T0 + 20_000 }),
      setAt: fc.constant(T0 - 100),
    }),
  );
  const thresholds: fc.Arbitrary<Thresholds> = fc
    .record({
      b: fc.option(
        fc.tuple(
          fc.double({ min: 0.01, max: 1, noNaN: true }),
          fc.double({ min: 0, max: 0.99, noNaN: true }),
        ),
        { nil: null },
      ),
      q: fc.option(fc.integer({ min: 1, max: 2000 }), { nil: null }),
      ttf: fc.option(fc.integer({ min: 1, max: 600 }), { nil: null }),
      mem: fc.option(fc.integer({ min: 1, max: 512 * 2 ** 20 }), { nil: null }),
      min: fc.integer({ min: 0, max: 600 }),
    })
    .map((t) => {
      const be = t.b ? Math.max(t.b[0], t.b[1] + 0.01) : null;
      return {
        defer: {
          usedBytesRatio: be,
          usedInodesRatio: be,
          queueMessages: t.q,
          timeToFullSeconds: t.ttf,
          memoryAvailableBytes: t.mem,
        },
        release: {
          usedBytesRatio: t.b ? Math.min(t.b[1], (be as number) - 0.01) : null,
          usedInodesRatio: t.b ? Math.min(t.b[1], (be as number) - 0.01) : null,
          queueMessages: t.q === null ? null : Math.floor(t.q / 2),
        },
        minDeferSeconds: t.min,
      };
    });
  const live = (ov: Override | null, t: number) => ov !== null && (ov.until === null || t < ov.until);

  test('never releases (nor stays out) while an enter condition holds, unless forced off', () => {
    fc.assert(
      fc.property(inputs, thresholds, state, override, now, (i, c, prev, ov, t) => {
        fc.pre(i.observable && !(live(ov, t) && ov?.mode === 'off'));
        const d = decide(i, c, prev, ov, t);
        if (enterReasons(i, c).length > 0) {
          assert.equal(d.state.active, true);
          assert.equal(d.released, false);
          for (const r of enterReasons(i, c))
            assert.ok(d.state.reasons.includes(r), `${r} in ${d.state.reasons}`);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('never releases while a resource is above its release line, for a threshold-held defer', () => {
    fc.assert(
      fc.property(inputs, thresholds, state, now, (i, c, prev, t) => {
        fc.pre(i.observable && prev.active && prev.thresholdSince !== null);
        const d = decide(i, c, prev, null, t);
        if (releaseBlockers(i, c).length > 0) assert.equal(d.released, false);
        // the min hold applies unless the defer was the operator's until now
        if (d.released && !prev.reasons.includes('manual')) {
          assert.ok(t - (prev.thresholdSince as number) >= c.minDeferSeconds, 'min hold passed');
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('entered and released are never both true, and match the transition', () => {
    fc.assert(
      fc.property(inputs, thresholds, state, override, now, (i, c, prev, ov, t) => {
        const d = decide(i, c, prev, ov, t);
        assert.equal(d.entered && d.released, false);
        assert.equal(d.entered, !prev.active && d.state.active);
        assert.equal(d.released, prev.active && !d.state.active);
        if (!d.state.active) assert.deepEqual(d.state, INITIAL_STATE);
        else assert.notEqual(d.state.since, null);
      }),
      { numRuns: 3000 },
    );
  });

  test('with override off the result is never active; with override on it always is', () => {
    fc.assert(
      fc.property(inputs, thresholds, state, override, now, (i, c, prev, ov, t) => {
        const d = decide(i, c, prev, ov, t);
        if (live(ov, t) && ov?.mode === 'off') assert.equal(d.state.active, false);
        if (live(ov, t) && ov?.mode === 'on') {
          assert.equal(d.state.active, true);
          assert.ok(d.state.reasons.includes('manual'), String(d.state.reasons));
        }
        assert.equal(d.overrideExpired, ov !== null && !live(ov, t));
        assert.equal(d.override, live(ov, t) ? ov : null);
      }),
      { numRuns: 3000 },
    );
  });

  test('the reason manual is given exactly while a manual on is in force', () => {
    fc.assert(
      fc.property(inputs, thresholds, state, override, now, (i, c, prev, ov, t) => {
        const d = decide(i, c, prev, ov, t);
        assert.equal(
          d.state.reasons.includes('manual'),
          live(ov, t) && ov?.mode === 'on',
          String(d.state.reasons),
        );
      }),
      { numRuns: 3000 },
    );
  });

  test('unobservable without an override: the active flag never changes unless only a manual defer ended', () => {
    fc.assert(
      fc.property(inputs, thresholds, state, now, (i, c, prev, t) => {
        const d = decide({ ...i, observable: false }, c, prev, null, t);
        const manualOnly = prev.active && prev.reasons.includes('manual') && prev.thresholdSince === null;
        assert.equal(d.state.active, prev.active && !manualOnly);
        if (d.state.active) assert.equal(d.state.since, prev.since);
      }),
      { numRuns: 2000 },
    );
  });

  test('observable, no override, inactive, nothing holds: stays inactive', () => {
    fc.assert(
      fc.property(inputs, thresholds, now, (i, c, t) => {
        fc.pre(i.observable && enterReasons(i, c).length === 0);
        assert.deepEqual(decide(i, c, INITIAL_STATE, null, t).state, INITIAL_STATE);
      }),
      { numRuns: 2000 },
    );
  });
});
