// prom-client's default collectors, each one a module (prom-client/lib/metrics/*.js, no type
// declarations of their own): (registry, config) => void.
declare module 'prom-client/lib/metrics/*.js' {
  import type { Registry } from 'prom-client';
  const collector: (registry: Registry, config: Record<string, unknown>) => void;
  export default collector;
}
