// CPU profile of a bench peer over a chosen window only (bench/macro/profile.ts): with
// TZORP_PROFILE_OUT set, SIGUSR2 starts the V8 profiler and SIGINT stops it, writes the profile there
// and exits. Start-up (module loading, JIT warm-up) stays out of the breakdown.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

export function profileOnSignals(): void {
  const out = process.env.TZORP_PROFILE_OUT;
  if (!out) {
    process.on('SIGINT', () => process.exit(0));
    return;
  }
  const s = new Session();
  s.connect();
  s.post('Profiler.enable');
  process.on('SIGUSR2', () => s.post('Profiler.start'));
  process.on('SIGINT', () =>
    s.post('Profiler.stop', (err, r) => {
      if (!err) writeFileSync(out, JSON.stringify(r.profile));
      process.exit(0);
    }),
  );
}
