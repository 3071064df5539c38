// A worker process's entry point when the daemon runs from source (forked by pool.ts): run the
// TypeScript sources through tsx, as bin/tzorp does when dist/ is stale. A compiled daemon forks
// dist/daemon/worker-main.js directly (src/entry.ts).
import { register } from 'tsx/esm/api';

register();
await import('./worker-main.ts');
