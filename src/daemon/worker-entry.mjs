// A worker process's entry point (forked by pool.ts): run the TypeScript sources through tsx, as
// bin/tzorp does for the CLI.
import { register } from 'tsx/esm/api';

register();
await import('./worker-main.ts');
