// Config: defaults, path resolution, validation messages, the --spool
// shorthand, freezing, and `check-config` end to end.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import YAML from 'yaml';
import { buildConfig, type Config, ConfigError, loadConfig, toYaml } from '../../src/config.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  assert.fail('expected a ConfigError');
}

const one = (extra: Record<string, unknown> = {}) => ({
  spools: [{ name: 'exim', path: '/var/spool/exim4', ...extra }],
});

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-unit-config-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = join(dir, name);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

describe('defaults', () => {
  test('a spool with only name and path', () => {
    const c = buildConfig(one(), null);
    assert.equal(c.file, null);
    assert.deepEqual(c.web, { listenAddress: ':9935', configFile: null, telemetryPath: '/metrics' });
    assert.deepEqual(c.api, { tokenFile: null });
    assert.deepEqual(c.log, { level: 'info' });
    assert.deepEqual(c.rescan, { schedule: '* * * * *' });
    assert.deepEqual(c.probes, []);
    assert.equal(c.spools.length, 1);
    const s = c.spools[0];
    assert.equal(s.name, 'exim');
    assert.equal(s.path, '/var/spool/exim4');
    assert.equal(s.mta, 'exim');
    assert.equal(s.flagFile, '/run/spool-guard/exim.defer');
    assert.equal(s.relayAddress, null);
    assert.deepEqual(s.defer, {
      usedBytesRatio: 0.8,
      usedInodesRatio: 0.8,
      queueMessages: null,
      timeToFullSeconds: 300,
      memoryAvailableBytes: null,
    });
    assert.deepEqual(s.release, { usedBytesRatio: 0.6, usedInodesRatio: 0.6, queueMessages: null });
    assert.equal(s.minDeferSeconds, 60);
    assert.deepEqual(s.hooks, { onDefer: null, onRelease: null, timeoutSeconds: 10 });
    assert.equal(s.relayCheckIntervalSeconds, 30);
  });

  test('release defaults follow the enter lines; null disables a line', () => {
    const s = buildConfig(
      one({
        defer: {
          used_bytes_ratio: 0.9,
          used_inodes_ratio: null,
          queue_messages: 1001,
          time_to_full_seconds: null,
        },
      }),
      null,
    ).spools[0];
    assert.equal(s.defer.usedBytesRatio, 0.9);
    assert.equal(s.release.usedBytesRatio, 0.7);
    assert.equal(s.defer.usedInodesRatio, null);
    assert.equal(s.release.usedInodesRatio, null);
    assert.equal(s.defer.queueMessages, 1001);
    assert.equal(s.release.queueMessages, 500);
    assert.equal(s.defer.timeToFullSeconds, null);
  });

  test('the example of the spec is accepted as written', () => {
    const yml = `
web:
  listen_address: ":9935"
api:
  token_file: /etc/spool-guard/token
rescan:
  schedule: "* * * * *"
probes:
  - name: retry
    role: retry_host
    address: retry.example.net:25
    interval: 30s
spools:
  - name: exim
    path: /var/spool/exim4
    mta: exim
    flag_file: /run/spool-guard/exim.defer
    relay_address: 127.0.0.1:25
    defer:
      used_bytes_ratio: 0.80
      used_inodes_ratio: 0.80
      queue_messages: 100000
      time_to_full_seconds: 300
      memory_available_bytes: 268435456
    release:
      used_bytes_ratio: 0.60
      used_inodes_ratio: 0.60
      queue_messages: 50000
    min_defer_seconds: 60
    hooks:
      on_defer: ["/usr/local/bin/notify", "defer"]
      on_release: ["/usr/local/bin/notify", "release"]
      timeout: 10s
`;
    const c = loadConfig(file('spec.yml', yml));
    assert.equal(c.api.tokenFile, '/etc/spool-guard/token');
    assert.deepEqual(c.probes[0], {
      name: 'retry',
      role: 'retry_host',
      address: 'retry.example.net:25',
      intervalSeconds: 30,
      timeoutSeconds: 10,
      sourceAddress: null,
    });
    const s = c.spools[0];
    assert.equal(s.relayAddress, '127.0.0.1:25');
    assert.equal(s.defer.queueMessages, 100000);
    assert.equal(s.defer.memoryAvailableBytes, 268435456);
    assert.equal(s.release.queueMessages, 50000);
    assert.deepEqual(s.hooks, {
      onDefer: ['/usr/local/bin/notify', 'defer'],
      onRelease: ['/usr/local/bin/notify', 'release'],
      timeoutSeconds: 10,
    });
  });
});

describe('paths', () => {
  test("relative paths resolve against the config file's directory, not the cwd", () => {
    const f = file(
      'etc/sg/guard.yml',
      `web:\n  config_file: web.yml\napi:\n  token_file: ../token\nspools:\n  - name: a\n    path: spool\n    flag_file: run/a.defer\n`,
    );
    const c = loadConfig(f);
    const base = join(dir, 'etc/sg');
    assert.equal(c.file, f);
    assert.equal(c.web.configFile, join(base, 'web.yml'));
    assert.equal(c.api.tokenFile, join(dir, 'etc/token'));
    assert.equal(c.spools[0].path, join(base, 'spool'));
    assert.equal(c.spools[0].flagFile, join(base, 'run/a.defer'));
  });

  test('absolute paths stay as they are; a relative config file name is made absolute', () => {
    const f = file('abs.yml', 'spools:\n  - name: a\n    path: /srv/spool\n    flag_file: /run/x/a.defer\n');
    const rel = relative(process.cwd(), f);
    assert.equal(rel.startsWith('/'), false);
    const c = loadConfig(rel);
    assert.equal(c.file, f);
    assert.equal(c.spools[0].path, '/srv/spool');
    assert.equal(c.spools[0].flagFile, '/run/x/a.defer');
  });
});

describe('validation messages name the key', () => {
  test('unknown keys at every level', () => {
    const p = problems(() =>
      buildConfig(
        {
          bogus: 1,
          web: { listen: ':1' },
          probes: [{ name: 'p', role: 'backup_mx', address: 'h:25', color: 'red' }],
          spools: [
            {
              name: 'a',
              path: '/s',
              defer: { used_byte_ratio: 0.5 },
              release: { queue: 3 },
              hooks: { on_defer: ['x'], shell: true },
              extra: 1,
            },
          ],
        },
        null,
      ),
    );
    for (const want of [
      'bogus: unknown key',
      'web.listen: unknown key',
      'probes[0].color: unknown key',
      'spools[0].defer.used_byte_ratio: unknown key',
      'spools[0].release.queue: unknown key',
      'spools[0].hooks.shell: unknown key',
      'spools[0].extra: unknown key',
    ]) {
      assert.ok(p.includes(want), `${want} in ${JSON.stringify(p)}`);
    }
    assert.equal(p.length, 7, JSON.stringify(p));
  });

  test('types, ranges, enums and required keys', () => {
    const p = problems(() =>
      buildConfig(
        {
          log: { level: 'loud' },
          probes: [{ name: 'p', role: 'primary', address: 'h:25' }],
          spools: [
            { name: 'a', path: '/s', mta: 'postfix', defer: { used_bytes_ratio: 1.5, queue_messages: 0 } },
            { name: 'b' },
          ],
        },
        null,
      ),
    );
    const has = (re: RegExp) =>
      assert.ok(
        p.some((x) => re.test(x)),
        `${re} in ${JSON.stringify(p)}`,
      );
    has(/^log\.level: expected one of "debug", "info", "warn", "error"$/);
    has(/^probes\[0\]\.role: expected one of "retry_host", "backup_mx"$/);
    has(/^spools\[0\]\.mta: expected one of "exim"$/);
    has(/^spools\[0\]\.defer\.used_bytes_ratio: /);
    has(/^spools\[0\]\.defer\.queue_messages: /);
    has(/^spools\[1\]\.path: required key missing$/);
  });

  test('release at or above enter is rejected, naming both keys', () => {
    for (const [key, en, re] of [
      ['used_bytes_ratio', 0.7, 0.7],
      ['used_bytes_ratio', 0.7, 0.9],
      ['used_inodes_ratio', 0.5, 0.6],
      ['queue_messages', 100, 100],
    ] as const) {
      const p = problems(() => buildConfig(one({ defer: { [key]: en }, release: { [key]: re } }), null));
      assert.deepEqual(p, [
        `spools[0].release.${key}: expected below spools[0].defer.${key} (${en}), got ${re}`,
      ]);
    }
    // the default enter line counts too
    assert.deepEqual(
      problems(() => buildConfig(one({ release: { used_bytes_ratio: 0.85 } }), null)),
      ['spools[0].release.used_bytes_ratio: expected below spools[0].defer.used_bytes_ratio (0.8), got 0.85'],
    );
    // a release line without its enter line
    assert.deepEqual(
      problems(() =>
        buildConfig(one({ defer: { queue_messages: null }, release: { queue_messages: 5 } }), null),
      ),
      ['spools[0].release.queue_messages: set, but spools[0].defer.queue_messages is not'],
    );
    // just below is fine
    assert.equal(
      buildConfig(one({ defer: { used_bytes_ratio: 0.7 }, release: { used_bytes_ratio: 0.69 } }), null)
        .spools[0].release.usedBytesRatio,
      0.69,
    );
  });

  test('bad durations name the key and the value', () => {
    for (const bad of ['5x', '', '1h30', 'ten seconds', -1, '30 s']) {
      const p = problems(() => buildConfig(one({ hooks: { timeout: bad } }), null));
      assert.deepEqual(p, [
        `spools[0].hooks.timeout: expected a duration such as 30s, 5m or 1h, got ${JSON.stringify(bad)}`,
      ]);
    }
    const p = problems(() =>
      buildConfig(
        {
          ...one({ relay_check_interval: 'soon' }),
          probes: [{ name: 'p', role: 'backup_mx', address: 'h:25', interval: '1y' }],
        },
        null,
      ),
    );
    assert.deepEqual(p.sort(), [
      'probes[0].interval: expected a duration such as 30s, 5m or 1h, got "1y"',
      'spools[0].relay_check_interval: expected a duration such as 30s, 5m or 1h, got "soon"',
    ]);
    const c = buildConfig(one({ hooks: { timeout: '1m30s' }, relay_check_interval: 5 }), null);
    assert.equal(c.spools[0].hooks.timeoutSeconds, 90);
    assert.equal(c.spools[0].relayCheckIntervalSeconds, 5);
  });

  test('bad cron expressions', () => {
    for (const bad of ['bad', '* * *', '61 * * * *', '* * * * * * *']) {
      const p = problems(() => buildConfig({ ...one(), rescan: { schedule: bad } }, null));
      assert.deepEqual(p, [`rescan.schedule: expected a cron expression, got ${JSON.stringify(bad)}`]);
    }
    assert.equal(
      buildConfig({ ...one(), rescan: { schedule: '*/5 * * * *' } }, null).rescan.schedule,
      '*/5 * * * *',
    );
  });

  test('duplicate spool names, flag files and probe names', () => {
    const p = problems(() =>
      buildConfig(
        {
          probes: [
            { name: 'p', role: 'backup_mx', address: 'h:25' },
            { name: 'p', role: 'retry_host', address: 'i:25' },
          ],
          spools: [
            { name: 'a', path: '/s1' },
            { name: 'a', path: '/s2', flag_file: '/run/x.defer' },
            { name: 'c', path: '/s3', flag_file: '/run/x.defer' },
          ],
        },
        null,
      ),
    );
    assert.ok(p.includes('spools[1].name: duplicate spool name "a"'), JSON.stringify(p));
    assert.ok(p.includes('spools[2].flag_file: already used by spool a'), JSON.stringify(p));
    assert.ok(p.includes('probes[1].name: duplicate probe name "p"'), JSON.stringify(p));
  });

  test('addresses', () => {
    const p = problems(() =>
      buildConfig({ web: { listen_address: 'localhost' }, ...one({ relay_address: '127.0.0.1' }) }, null),
    );
    assert.ok(p.includes('web.listen_address: expected HOST:PORT, got "localhost"'), JSON.stringify(p));
    assert.ok(p.includes('spools[0].relay_address: expected HOST:PORT, got "127.0.0.1"'), JSON.stringify(p));
    assert.equal(
      buildConfig({ web: { listen_address: '[::1]:9935' }, ...one() }, null).web.listenAddress,
      '[::1]:9935',
    );
  });

  test('every problem of a kind is reported at once', () => {
    const p = problems(() =>
      buildConfig(
        {
          web: { listen_address: 'nope' },
          rescan: { schedule: 'never' },
          spools: [
            { name: 'a', path: '/s', hooks: { timeout: 'x' }, release: { used_bytes_ratio: 0.9 } },
            { name: 'a', path: '/t' },
          ],
        },
        null,
      ),
    );
    assert.deepEqual(p.sort(), [
      'rescan.schedule: expected a cron expression, got "never"',
      'spools[0].hooks.timeout: expected a duration such as 30s, 5m or 1h, got "x"',
      'spools[0].release.used_bytes_ratio: expected below spools[0].defer.used_bytes_ratio (0.8), got 0.9',
      'spools[1].flag_file: already used by spool a',
      'spools[1].name: duplicate spool name "a"',
      'web.listen_address: expected HOST:PORT, got "nope"',
    ]);
    const s = problems(() => buildConfig({ a: 1, b: 2, spools: [{ name: 'x y', path: '' }] }, null));
    assert.equal(s.length, 4, JSON.stringify(s));
  });

  test('no spools, empty spools, not a mapping', () => {
    assert.deepEqual(
      problems(() => buildConfig({}, null)),
      ['spools: required key missing (at least one spool)'],
    );
    assert.equal(problems(() => buildConfig({ spools: [] }, null)).length, 1);
    assert.deepEqual(
      problems(() => buildConfig([], null)),
      ['(top level): expected a mapping'],
    );
    assert.deepEqual(
      problems(() => buildConfig('x', null)),
      ['(top level): expected a mapping'],
    );
  });
});

describe('loadConfig', () => {
  test('unreadable file, YAML errors, duplicate YAML keys, empty file', () => {
    assert.match(problems(() => loadConfig(join(dir, 'missing.yml')))[0], /missing\.yml: cannot read/);
    assert.match(problems(() => loadConfig(file('bad.yml', 'spools: [\n')))[0], /bad\.yml/);
    const dup = problems(() =>
      loadConfig(file('dup.yml', 'spools:\n  - name: a\n    name: b\n    path: /s\n')),
    );
    assert.equal(dup.length, 1);
    assert.match(dup[0], /dup\.yml/);
    assert.deepEqual(
      problems(() => loadConfig(file('empty.yml', ''))),
      ['spools: required key missing (at least one spool)'],
    );
    assert.deepEqual(
      problems(() => loadConfig(null)),
      ['--config or --spool: one of them is required'],
    );
  });
});

describe('--spool shorthand', () => {
  test('one spool named default with default thresholds and flag', () => {
    const c = loadConfig(null, { spool: '/var/spool/exim4' });
    assert.equal(c.spools.length, 1);
    const s = c.spools[0];
    assert.equal(s.name, 'default');
    assert.equal(s.path, '/var/spool/exim4');
    assert.equal(s.flagFile, '/run/spool-guard/default.defer');
    assert.equal(s.defer.usedBytesRatio, 0.8);
    assert.equal(s.release.usedBytesRatio, 0.6);
  });

  test('--flag-file belongs to it', () => {
    assert.equal(
      loadConfig(null, { spool: '/s', flagFile: '/run/other/f.defer' }).spools[0].flagFile,
      '/run/other/f.defer',
    );
    assert.deepEqual(
      problems(() => loadConfig(file('nospools.yml', 'log:\n  level: info\n'), { flagFile: '/x' })),
      ['--flag-file: only valid together with --spool'],
    );
  });

  test('with a config file: allowed when it lists no spools, an error when it does', () => {
    const f = file('sub/web-only.yml', 'web:\n  listen_address: "127.0.0.1:9999"\n');
    const c = loadConfig(f, { spool: '/srv/spool' });
    assert.equal(c.web.listenAddress, '127.0.0.1:9999');
    assert.equal(c.spools[0].path, '/srv/spool');
    const g = file('with-spools.yml', 'spools:\n  - name: a\n    path: /s\n');
    assert.deepEqual(
      problems(() => loadConfig(g, { spool: '/srv/spool' })),
      ['--spool: cannot be combined with a config file that lists spools'],
    );
  });

  test('relative --spool and --flag-file resolve against the cwd, even with a config file elsewhere', () => {
    const f = file('elsewhere/web-only.yml', 'log:\n  level: debug\n');
    const c = loadConfig(f, { spool: 'rel/spool', flagFile: 'rel/f.defer' });
    assert.equal(c.spools[0].path, resolve(process.cwd(), 'rel/spool'));
    assert.equal(c.spools[0].flagFile, resolve(process.cwd(), 'rel/f.defer'));
    const d = loadConfig(null, { spool: 'rel/spool' });
    assert.equal(d.spools[0].path, resolve(process.cwd(), 'rel/spool'));
  });

  test('flag overrides beat the file: listen address and log level', () => {
    const f = file(
      'ov.yml',
      'web:\n  listen_address: ":1"\nlog:\n  level: warn\nspools:\n  - name: a\n    path: /s\n',
    );
    const c = loadConfig(f, { listenAddress: '127.0.0.1:2', logLevel: 'debug' });
    assert.equal(c.web.listenAddress, '127.0.0.1:2');
    assert.equal(c.log.level, 'debug');
  });
});

describe('the result', () => {
  test('is deep-frozen', () => {
    const c = buildConfig(one({ hooks: { on_defer: ['/bin/true'] } }), null);
    for (const o of [
      c,
      c.web,
      c.spools,
      c.spools[0],
      c.spools[0].defer,
      c.spools[0].release,
      c.spools[0].hooks,
      c.spools[0].hooks.onDefer,
    ]) {
      assert.equal(Object.isFrozen(o), true);
    }
    assert.throws(() => {
      (c.spools[0].defer as { usedBytesRatio: number }).usedBytesRatio = 0.1;
    }, TypeError);
    assert.throws(() => {
      (c.spools as unknown as unknown[]).push({});
    }, TypeError);
    assert.equal(c.spools[0].defer.usedBytesRatio, 0.8);
  });

  test('does not share structure with the input', () => {
    const raw = one({ hooks: { on_defer: ['/bin/true'] } });
    buildConfig(raw, null);
    assert.equal(Object.isFrozen(raw), false);
    assert.equal(Object.isFrozen(raw.spools[0]), false);
  });

  test('property: toYaml output loads back to the same config', () => {
    const ratioPair = fc
      .tuple(fc.integer({ min: 2, max: 100 }), fc.integer({ min: 0, max: 99 }))
      .filter(([e, r]) => r < e)
      .map(([e, r]) => ({ enter: e / 100, release: r / 100 }));
    const spool = fc.record({
      bytes: fc.option(ratioPair, { nil: undefined }),
      inodes: fc.option(ratioPair, { nil: undefined }),
      queue: fc.option(fc.integer({ min: 1, max: 1e6 }), { nil: undefined }),
      ttf: fc.option(fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 3600 })), { nil: undefined }),
      mem: fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }),
      min: fc.option(fc.integer({ min: 0, max: 3600 }), { nil: undefined }),
      timeout: fc.option(fc.constantFrom('250ms', '5s', '2m', 7), { nil: undefined }),
      relay: fc.option(fc.constantFrom('127.0.0.1:25', '[::1]:2525'), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(spool, { minLength: 1, maxLength: 3 }), (specs) => {
        const raw = {
          spools: specs.map((s, i) => {
            const defer: Record<string, unknown> = {};
            const release: Record<string, unknown> = {};
            if (s.bytes)
              [defer.used_bytes_ratio, release.used_bytes_ratio] = [s.bytes.enter, s.bytes.release];
            if (s.inodes)
              [defer.used_inodes_ratio, release.used_inodes_ratio] = [s.inodes.enter, s.inodes.release];
            if (s.queue !== undefined) defer.queue_messages = s.queue;
            if (s.ttf !== undefined) defer.time_to_full_seconds = s.ttf;
            if (s.mem !== undefined) defer.memory_available_bytes = s.mem;
            return {
              name: `s${i}`,
              path: `/spool/${i}`,
              defer,
              release,
              ...(s.min !== undefined ? { min_defer_seconds: s.min } : {}),
              ...(s.timeout !== undefined ? { hooks: { timeout: s.timeout } } : {}),
              ...(s.relay !== undefined ? { relay_address: s.relay } : {}),
            };
          }),
        };
        const c1 = buildConfig(raw, null);
        const c2: Config = buildConfig(YAML.parse(toYaml(c1)), null);
        assert.deepEqual(c2, c1);
      }),
      { numRuns: 60 },
    );
  });
});

describe('check-config (CLI)', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, SPOOL_GUARD_CONFIG: '' },
      timeout: 20_000,
    });

  test('a bad file: exit 2, one line per problem naming the key', () => {
    const f = file(
      'cli-bad.yml',
      'spools:\n  - name: exim\n    path: /s\n    defer:\n      used_byte_ratio: 0.8\n    colour: blue\n',
    );
    const r = cli('check-config', '--config', f);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.ok(
      lines.some((l) => l.includes('spools[0].defer.used_byte_ratio: unknown key')),
      r.stderr,
    );
    assert.ok(
      lines.some((l) => l.includes('spools[0].colour: unknown key')),
      r.stderr,
    );
    assert.equal(r.stdout, '');
  });

  test('a good file: exit 0 and the effective config, defaults filled in and paths resolved', () => {
    const f = file(
      'cli/good.yml',
      'spools:\n  - name: exim\n    path: spool\n    defer:\n      queue_messages: 1000\n',
    );
    const r = cli('check-config', '--config', f);
    assert.equal(r.status, 0, r.stderr);
    const out = YAML.parse(r.stdout);
    assert.equal(out.web.listen_address, ':9935');
    assert.equal(out.spools[0].path, join(dir, 'cli/spool'));
    assert.equal(out.spools[0].flag_file, '/run/spool-guard/exim.defer');
    assert.equal(out.spools[0].defer.used_bytes_ratio, 0.8);
    assert.equal(out.spools[0].release.used_bytes_ratio, 0.6);
    assert.equal(out.spools[0].release.queue_messages, 500);
    assert.equal(out.spools[0].min_defer_seconds, 60);
    // what it prints is itself a valid config
    const again = cli('check-config', '--config', file('cli/again.yml', r.stdout));
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, r.stdout);
  });
});
