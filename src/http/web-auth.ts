// Basic-auth verification against bcrypt hashes, with a cache so that a
// Prometheus scraping 20 times a second pays bcrypt once per credential, not
// once per scrape.
//
// - The cache key is a SHA-256 of (user, password, stored hash): no password is
//   kept in memory, and a changed hash can never hit an old entry.
// - Positive and negative results live in separate bounded maps, so a flood of
//   wrong passwords cannot evict the entries of legitimate scrapers. Negative
//   entries expire after a short time.
// - Usernames are compared in constant time against every configured user (no
//   early exit); an unknown user is checked against a dummy hash of the same
//   cost, so the response time does not reveal whether the user exists.
// - bcrypt runs one at a time (it is CPU-bound; bcryptjs's async compare yields
//   to the event loop between rounds), concurrent requests with the same
//   credentials share one computation, and at most `maxPending` distinct
//   computations may wait: beyond that the caller is told `busy`.
import { createHash, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

export type Verdict = 'ok' | 'denied' | 'busy';

export interface BasicAuthOptions {
  /** Bound of the positive cache (verified credentials). */
  maxPositive?: number;
  /** Bound of the negative cache (rejected credentials). */
  maxNegative?: number;
  /** How long a rejection is remembered. */
  negativeTtlMs?: number;
  /** Distinct bcrypt computations allowed to wait at once. */
  maxPending?: number;
  now?: () => number;
}

/** Bcrypt hash as htpasswd -B, Go's x/crypto/bcrypt and bcryptjs write them. */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

interface User {
  digest: Buffer;
  hash: string;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export class BasicAuthVerifier {
  private users: User[] = [];
  private dummyHash = '';
  private generation = 0;
  private readonly positive = new Map<string, true>();
  private readonly negative = new Map<string, number>(); // key -> expiry (ms)
  private readonly inflight = new Map<string, Promise<boolean>>();
  private chain: Promise<unknown> = Promise.resolve();
  private readonly maxPositive: number;
  private readonly maxNegative: number;
  private readonly negativeTtlMs: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  /** bcrypt comparisons actually run (tests and metrics). */
  bcryptCalls = 0;
  cacheHits = 0;

  constructor(users: Map<string, string>, opts: BasicAuthOptions = {}) {
    this.maxPositive = opts.maxPositive ?? 256;
    this.maxNegative = opts.maxNegative ?? 1024;
    this.negativeTtlMs = opts.negativeTtlMs ?? 30_000;
    this.maxPending = opts.maxPending ?? 32;
    this.now = opts.now ?? Date.now;
    this.setUsers(users);
  }

  get size(): number {
    return this.users.length;
  }

  /** Replace the users; every cached result is dropped. */
  setUsers(users: Map<string, string>): void {
    this.generation++;
    this.positive.clear();
    this.negative.clear();
    this.inflight.clear();
    this.users = [...users].map(([name, hash]) => ({ digest: sha256(name), hash }));
    let cost = 10;
    if (this.users.length > 0) cost = Math.max(...this.users.map((u) => bcrypt.getRounds(u.hash)));
    // A well-formed hash of the same cost that no password matches: comparing
    // against it costs what comparing against a real one does.
    this.dummyHash = bcrypt.genSaltSync(cost) + 'x'.repeat(31);
  }

  async verify(user: string, password: string): Promise<Verdict> {
    const startedIn = this.generation;
    const wanted = sha256(user);
    let hash = this.dummyHash;
    let known = false;
    for (const u of this.users) {
      // No early exit: every user is compared.
      if (timingSafeEqual(u.digest, wanted)) {
        hash = u.hash;
        known = true;
      }
    }
    const key = createHash('sha256')
      .update(JSON.stringify([user, password, hash]), 'utf8')
      .digest('base64');

    if (this.positive.has(key)) {
      this.cacheHits++;
      // Refresh its place: the map's insertion order is the eviction order.
      this.positive.delete(key);
      this.positive.set(key, true);
      return known ? 'ok' : 'denied';
    }
    const expiry = this.negative.get(key);
    if (expiry !== undefined) {
      if (expiry > this.now()) {
        this.cacheHits++;
        return 'denied';
      }
      this.negative.delete(key);
    }

    let pending = this.inflight.get(key);
    if (!pending) {
      if (this.inflight.size >= this.maxPending) return 'busy';
      const generation = this.generation;
      pending = this.serialize(async () => {
        this.bcryptCalls++;
        try {
          return await bcrypt.compare(password, hash);
        } catch {
          return false;
        }
      }).then((match) => {
        const ok = match && known;
        if (this.generation === generation) {
          this.inflight.delete(key);
          this.remember(key, ok);
        }
        return ok;
      });
      this.inflight.set(key, pending);
    }
    const ok = await pending;
    // The users changed while bcrypt ran: decide against the new ones.
    if (this.generation !== startedIn) return this.verify(user, password);
    return ok ? 'ok' : 'denied';
  }

  private remember(key: string, ok: boolean): void {
    if (ok) {
      this.positive.set(key, true);
      if (this.positive.size > this.maxPositive) this.positive.delete(this.positive.keys().next().value!);
    } else {
      this.negative.set(key, this.now() + this.negativeTtlMs);
      if (this.negative.size > this.maxNegative) this.negative.delete(this.negative.keys().next().value!);
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
