// The ACL kit in deploy/exim, included verbatim into real Exim configs:
// a test daemon, and Debian's own split and unsplit configurations.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EXIM_BIN, Exim, KIT_ACL, KIT_MACROS, SmtpClient, eximAvailable, smtpSend } from '../helpers/exim.js';
import { isRoot } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

const skip = !isRoot || !eximAvailable;

describe('ACL kit in a running Exim', { skip }, () => {
  let dir: string;
  let flag: string;
  let exim: Exim;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-kit-'));
    chmodSync(dir, 0o755); // Exim (as Debian-exim) must be able to stat the flag, like /run/spool-guard
    flag = join(dir, 'exim.defer');
    exim = await Exim.create({
      name: 'kit',
      address: '127.0.0.2',
      aclKit: { flagFile: flag },
      queueOnly: true,
    });
    await exim.start();
  });
  after(async () => {
    await exim?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('220 and mail accepted without the flag', async () => {
    rmSync(flag, { force: true });
    const r = await smtpSend(exim.listen, { to: 'a@dest.test' });
    assert.equal(r.accepted, true, JSON.stringify(r));
    assert.equal(exim.bpc(), 1);
  });

  test('421 4.3.2 at connect while the flag exists, with the reasons from the flag', async () => {
    writeFileSync(flag, 'reasons=bytes,queue since=1764763200\n');
    const c = await SmtpClient.connect(exim.listen);
    assert.equal(c.greeting.code, 421);
    assert.match(c.greeting.lines[0], /^421[- ]4\.3\.2 /);
    assert.match(c.greeting.text, /\(reasons=bytes,queue since=1764763200\)/);
    // Exim closes after a 421 greeting.
    await waitFor('the connection to close', () => c.closed, { timeoutMs: 5000 });
    await c.quit();
    assert.match(exim.mainlog(), /temporarily rejected connection in "connect" ACL: 421 4\.3\.2 /);
  });

  test('an empty flag (touch) defers too', async () => {
    writeFileSync(flag, '');
    const c = await SmtpClient.connect(exim.listen);
    assert.equal(c.greeting.code, 421);
    await c.quit();
  });

  test('451 4.3.2 at MAIL in a session opened before the flag appeared; RSET and a later MAIL pass once it is gone', async () => {
    rmSync(flag, { force: true });
    const c = await SmtpClient.connect(exim.listen);
    assert.equal(c.greeting.code, 220);
    assert.equal((await c.command('EHLO client.test')).code, 250);
    writeFileSync(flag, 'reasons=inodes since=1764763200\n');
    const mail = await c.command('MAIL FROM:<a@src.test>');
    assert.equal(mail.code, 451);
    assert.match(mail.lines[0], /^451[- ]4\.3\.2 /);
    assert.match(mail.text, /reasons=inodes/);
    rmSync(flag);
    assert.equal((await c.command('MAIL FROM:<a@src.test>')).code, 250);
    await c.quit();
  });

  test('220 again once the flag is removed', async () => {
    rmSync(flag, { force: true });
    const before = exim.bpc();
    const r = await smtpSend(exim.listen, { to: 'b@dest.test' });
    assert.equal(r.accepted, true);
    assert.equal(exim.bpc(), before + 1);
  });

  test('the kit keeps check_spool_space / check_spool_inodes on with its suggested values', () => {
    const out = exim.exim([
      '-bP',
      'check_spool_space',
      'check_spool_inodes',
      'acl_smtp_connect',
      'acl_smtp_mail',
    ]);
    assert.match(out, /check_spool_space = 64M/);
    assert.match(out, /check_spool_inodes = 2000/);
    assert.match(out, /acl_smtp_connect = acl_spool_guard_connect/);
    assert.match(out, /acl_smtp_mail = acl_spool_guard_mail/);
  });
});

describe('ACL kit chained to a site connect ACL (SPOOL_GUARD_NEXT_CONNECT_ACL)', { skip }, () => {
  let dir: string;
  let flag: string;
  let exim: Exim;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-kit-chain-'));
    chmodSync(dir, 0o755);
    flag = join(dir, 'exim.defer');
    exim = await Exim.create({
      name: 'chain',
      aclKit: { flagFile: flag },
      kitMacros: 'SPOOL_GUARD_NEXT_CONNECT_ACL = acl_site_connect',
      extraAcl: [
        'acl_site_connect:',
        '  deny',
        '    hosts = 127.0.0.66',
        '    message = 554 5.7.1 go away',
        '  accept',
      ].join('\n'),
    });
  });
  after(async () => {
    await exim?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  const greet = (host: string) => {
    const r = spawnSync(EXIM_BIN, ['-C', exim.cfg, '-bh', host], { input: 'QUIT\r\n', encoding: 'utf8' });
    return r.stdout.split('\n').find((l) => /^\d{3} /.test(l)) ?? r.stdout + r.stderr;
  };

  test('the site ACL still decides without the flag; the flag comes first with it', () => {
    rmSync(flag, { force: true });
    assert.match(greet('127.0.0.65'), /^220 /);
    assert.match(greet('127.0.0.66'), /^554 5\.7\.1 go away/);
    writeFileSync(flag, 'reasons=queue since=1\n');
    assert.match(greet('127.0.0.65'), /^421 /);
    assert.match(greet('127.0.0.66'), /^421 /);
  });
});

// Debian's update-exim4.conf, run on a copy of /etc/exim4 with the kit dropped in (split) or
// .included (unsplit); the generated config is then driven with `exim4 -bh` (a fake SMTP session
// on stdin, no daemon, nothing delivered).
const debianAvailable = spawnSync('sh', ['-c', 'command -v update-exim4.conf']).status === 0;

function bh(cfg: string, script: string): string[] {
  const r = spawnSync(EXIM_BIN, ['-C', cfg, '-bh', '127.0.0.9'], { input: script, encoding: 'utf8' });
  // Replies on stdout; debugging (>>>) and LOG: lines on stderr.
  return r.stdout.split('\n').filter((l) => /^\d{3}[ -]/.test(l));
}

for (const scheme of ['split', 'unsplit'] as const) {
  describe(`ACL kit in Debian's ${scheme} configuration`, { skip: skip || !debianAvailable }, () => {
    let dir: string;
    let cfg: string;
    let flag: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), `sg-deb-${scheme}-`));
      chmodSync(dir, 0o755);
      const conf = join(dir, 'exim4');
      cpSync('/etc/exim4', conf, { recursive: true });
      flag = join(dir, 'exim.defer');
      const u = join(conf, 'update-exim4.conf.conf');
      const uc = readFileSync(u, 'utf8').replace(/^dc_use_split_config=.*$/m, '');
      writeFileSync(u, `${uc}\ndc_use_split_config='${scheme === 'split' ? 'true' : 'false'}'\n`);
      // The flag path is the one site-specific bit. Split: conf.d/main/000_localmacros, as Debian
      // suggests. Unsplit: exim4.conf.localmacros would do on a real system, but update-exim4.conf only
      // reads it when /etc/exim4/exim4.conf.localmacros exists, so here the line goes into the template.
      const macro = `SPOOL_GUARD_FLAG = ${flag}\n`;
      if (scheme === 'split') {
        writeFileSync(join(conf, 'conf.d/main/000_localmacros'), macro);
        cpSync(KIT_MACROS, join(conf, 'conf.d/main/00_spool-guard_macros'));
        cpSync(KIT_ACL, join(conf, 'conf.d/acl/01_spool-guard_acl'));
      } else {
        const t = join(conf, 'exim4.conf.template');
        let s = readFileSync(t, 'utf8');
        // Main section: before Debian's MAIN_ACL_CHECK_MAIL default; ACL section: right after `begin acl`.
        s = s.replace(/^(\.ifndef MAIN_ACL_CHECK_MAIL)$/m, `${macro}.include ${KIT_MACROS}\n$1`);
        s = s.replace(/^begin acl$/m, `begin acl\n.include ${KIT_ACL}`);
        assert.ok(s.includes(`.include ${KIT_ACL}`) && s.includes(`.include ${KIT_MACROS}`));
        writeFileSync(t, s);
      }
      cfg = join(dir, 'exim4.conf');
      const r = spawnSync('update-exim4.conf', ['-d', conf, '-o', cfg], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const v = spawnSync(EXIM_BIN, ['-C', cfg, '-bV'], { encoding: 'utf8' });
      assert.equal(v.status, 0, v.stdout + v.stderr);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    const session = 'EHLO client.test\r\nMAIL FROM:<a@src.test>\r\nQUIT\r\n';

    test('220 and 250 at MAIL without the flag', () => {
      rmSync(flag, { force: true });
      const lines = bh(cfg, session);
      assert.match(lines[0], /^220 /);
      assert.ok(
        lines.some((l) => /^250 OK/.test(l)),
        lines.join('\n'),
      );
    });

    test('421 4.3.2 at connect with the flag', () => {
      writeFileSync(flag, 'reasons=memory since=1764763200\n');
      const lines = bh(cfg, session);
      assert.match(lines[0], /^421[- ]4\.3\.2 /);
      assert.ok(!lines.some((l) => l.startsWith('220')), lines.join('\n'));
      assert.match(lines.join(' '), /reasons=memory since=1764763200/);
    });

    test("Debian's own MAIL ACL still runs behind the wrapper", () => {
      const out = spawnSync(EXIM_BIN, ['-C', cfg, '-bP', 'acl_smtp_mail', 'acl_smtp_connect'], {
        encoding: 'utf8',
      }).stdout;
      assert.match(out, /acl_smtp_mail = acl_spool_guard_mail/);
      assert.match(out, /acl_smtp_connect = acl_spool_guard_connect/);
      const next = spawnSync(EXIM_BIN, ['-C', cfg, '-bP', 'macro', 'SPOOL_GUARD_NEXT_MAIL_ACL'], {
        encoding: 'utf8',
      });
      assert.match(next.stdout, /SPOOL_GUARD_NEXT_MAIL_ACL=acl_check_mail/);
    });
  });
}
