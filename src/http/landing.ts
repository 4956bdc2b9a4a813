// The landing page an operator opens on the relay itself: every spool's fill as
// bars with the enter/release lines, queue figures, defer state, reasons,
// override, peers. Server-rendered, no external assets; a small script refreshes
// the figures in place from /api/v1/status.
import type { SpoolGuard } from '../guard/guard.js';

const esc = (s: unknown) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function bar(key: string, ratio: number | null, enter: number | null, release: number | null): string {
  const pct = ratio === null ? 0 : Math.min(100, Math.max(0, ratio * 100));
  const line = (v: number | null, cls: string, title: string) =>
    v === null
      ? ''
      : `<i class="${cls}" style="left:${(v * 100).toFixed(1)}%" title="${title} ${(v * 100).toFixed(0)}%"></i>`;
  return `<div class="bar" data-bar="${key}"><b style="width:${pct.toFixed(1)}%"></b>${line(enter, 'enter', 'enter')}${line(release, 'release', 'release')}</div>`;
}

const pctText = (r: number | null | undefined) =>
  r === null || r === undefined ? 'unlimited' : `${(r * 100).toFixed(1)}%`;

function spoolCard(g: SpoolGuard): string {
  const s = g.status();
  const fs = s.filesystem;
  const q = s.queue;
  const state = s.defer.active ? 'DEFERRING' : 'accepting';
  const ov = s.override
    ? `manual ${s.override.mode}${s.override.until ? ` until ${new Date(s.override.until * 1000).toISOString()}` : ''}`
    : 'none';
  return `<section class="spool ${s.defer.active ? 'deferring' : ''}" data-spool="${esc(s.name)}">
<h2>${esc(s.name)} <span class="state" data-k="state">${state}</span></h2>
<p class="meta">${esc(s.path)} · ${esc(fs?.fstype ?? 'unknown')} · <span data-k="up">${s.up ? 'up' : `DOWN: ${esc(s.error ?? '')}`}</span></p>
<table>
<tr><th>bytes</th><td>${bar('bytes', fs?.used_bytes_ratio ?? null, s.thresholds.defer.used_bytes_ratio, s.thresholds.release.used_bytes_ratio)}</td><td data-k="bytes">${pctText(fs?.used_bytes_ratio)} of ${fmtBytes(fs?.size_bytes)}</td></tr>
<tr><th>inodes</th><td>${bar('inodes', fs?.used_inodes_ratio ?? null, s.thresholds.defer.used_inodes_ratio, s.thresholds.release.used_inodes_ratio)}</td><td data-k="inodes">${pctText(fs?.used_inodes_ratio)} of ${fs?.files ?? '—'}</td></tr>
</table>
<dl>
<dt>queue</dt><dd data-k="messages">${q ? q.messages : '—'}</dd>
<dt>queue bytes</dt><dd data-k="qbytes">${fmtBytes(q?.bytes)}</dd>
<dt>frozen</dt><dd data-k="frozen">${q?.frozen ?? '—'}</dd>
<dt>oldest</dt><dd data-k="oldest">${q?.oldest_timestamp ? new Date(q.oldest_timestamp * 1000).toISOString() : '—'}</dd>
<dt>time to full</dt><dd data-k="ttf">${s.time_to_full_seconds === null ? 'not filling' : `${Math.round(s.time_to_full_seconds)} s`}</dd>
<dt>reasons</dt><dd data-k="reasons">${esc(s.defer.reasons.join(', ') || '—')}</dd>
<dt>override</dt><dd data-k="override">${esc(ov)}</dd>
<dt>relay check</dt><dd data-k="relay">${s.relay ? (s.relay.enforcing === null ? 'pending' : s.relay.enforcing ? `enforcing (${s.relay.greeting_code})` : `NOT ENFORCING (${s.relay.greeting_code ?? 'no answer'})`) : 'not configured'}</dd>
</dl></section>`;
}

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;max-width:60em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin:.2em 0}.meta{color:#666;margin:.2em 0 .6em}
.spool{border:1px solid #ccc;border-radius:6px;padding:.8em 1em;margin:1em 0}.deferring{border-color:#c33;background:#fff5f5}
.state{font-size:.8em;padding:.1em .5em;border-radius:4px;background:#2a7;color:#fff}.deferring .state{background:#c33}
table{width:100%;border-collapse:collapse}th{text-align:left;width:5em;font-weight:normal;color:#555}td:last-child{width:14em;text-align:right}
.bar{position:relative;height:14px;background:#eee;border-radius:3px}.bar b{position:absolute;left:0;top:0;bottom:0;background:#48c;border-radius:3px}
.bar i{position:absolute;top:-3px;bottom:-3px;width:2px}.bar i.enter{background:#c33}.bar i.release{background:#e90}
dl{display:grid;grid-template-columns:8em 1fr;gap:.1em 1em;margin:.6em 0 0}dt{color:#555}dd{margin:0}
footer{color:#777;font-size:.9em}a{color:#36c}`;

const SCRIPT = `(function(){
function pct(r){return r==null?'unlimited':(r*100).toFixed(1)+'%'}
function bytes(n){if(n==null)return'\\u2014';var u=['B','KiB','MiB','GiB','TiB'],i=0;while(Math.abs(n)>=1024&&i<4){n/=1024;i++}return n.toFixed(i?1:0)+' '+u[i]}
function set(el,k,v){var e=el.querySelector('[data-k="'+k+'"]');if(e)e.textContent=v}
function setBar(el,k,r){var b=el.querySelector('[data-bar="'+k+'"] b');if(b)b.style.width=(r==null?0:Math.min(100,r*100)).toFixed(1)+'%'}
function tick(){fetch('api/v1/status',{cache:'no-store'}).then(function(r){return r.json()}).then(function(st){
(st.spools||[]).forEach(function(s){var el=document.querySelector('[data-spool="'+CSS.escape(s.name)+'"]');if(!el)return;
var fs=s.filesystem,q=s.queue;el.classList.toggle('deferring',s.defer.active);
set(el,'state',s.defer.active?'DEFERRING':'accepting');set(el,'up',s.up?'up':'DOWN: '+(s.error||''));
setBar(el,'bytes',fs&&fs.used_bytes_ratio);setBar(el,'inodes',fs&&fs.used_inodes_ratio);
set(el,'bytes',pct(fs&&fs.used_bytes_ratio)+' of '+bytes(fs&&fs.size_bytes));set(el,'inodes',pct(fs&&fs.used_inodes_ratio)+' of '+(fs?fs.files:'\\u2014'));
set(el,'messages',q?q.messages:'\\u2014');set(el,'qbytes',bytes(q&&q.bytes));set(el,'frozen',q&&q.frozen!=null?q.frozen:'\\u2014');
set(el,'oldest',q&&q.oldest_timestamp?new Date(q.oldest_timestamp*1000).toISOString():'\\u2014');
set(el,'ttf',s.time_to_full_seconds==null?'not filling':Math.round(s.time_to_full_seconds)+' s');
set(el,'reasons',s.defer.reasons.join(', ')||'\\u2014');
set(el,'override',s.override?('manual '+s.override.mode+(s.override.until?' until '+new Date(s.override.until*1000).toISOString():'')):'none');
});var p=document.getElementById('peers');if(p&&st.peers)p.textContent=st.peers.map(function(x){return x.name+' ('+x.role+'): '+(x.up==null?'pending':x.up?'up':'DOWN')}).join(' \\u00b7 ')||'none configured';
}).catch(function(){})}
setInterval(tick,2000);})();`;

export function renderLanding(
  guards: SpoolGuard[],
  version: string,
  telemetryPath: string,
  peers: { name: string; role: string; up: boolean | null }[] = [],
): string {
  const peerText = peers.length
    ? peers
        .map((p) => `${esc(p.name)} (${esc(p.role)}): ${p.up === null ? 'pending' : p.up ? 'up' : 'DOWN'}`)
        .join(' · ')
    : 'none configured';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>spool-guard</title><style>${CSS}</style></head><body>
<h1>spool-guard</h1>
<p><a href=".${esc(telemetryPath)}">Metrics</a> · <a href="api/v1/status">Status (JSON)</a> · <a href="healthz">Health</a> · <a href="readyz">Readiness</a></p>
${guards.map(spoolCard).join('\n')}
<p><b>Peers:</b> <span id="peers">${peerText}</span></p>
<footer>spool-guard ${esc(version)} · figures refresh every 2 s when JavaScript runs</footer>
<script>${SCRIPT}</script></body></html>`;
}
