// The live part of `npm run demo`: bring the lab up with tzorp in the firewall, drive the scenarios'
// traffic from the clients, and print what happened with the proof (session ids, log lines,
// counters). The static decision table that `tzorp demo` prints first, and alone when not root, is in
// src/cli/commands/demo.ts.
import Table from 'cli-table3';
import pc from 'picocolors';
import { Engine } from '../engine/index.ts';
import { TzorpError } from '../errors.ts';
import { loadPolicyFile } from '../policy/index.ts';
import type { Policy } from '../policy/model.ts';
import { DEFAULT_LAB_POLICY, labDown, labUp } from './lab.ts';
import { type RowResult, runScenario, SCENARIOS, type Scenario, type ScenarioDecision } from './scenarios.ts';
import { readLabState } from './state.ts';
import { LAB_LINKS, type NodeRole } from './topology.ts';

export interface LiveDemoOptions {
  name: string;
  policy?: string;
  /** Where the table goes (stdout); progress goes to stderr when it is a terminal. */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Take the lab down at the end (tests); by default it stays up to be poked at. */
  down?: boolean;
}

export interface LiveDemoResult {
  rows: RowResult[];
  ok: boolean;
}

/** Why the live demo cannot run here, or null. */
export function liveDemoUnavailable(): string | null {
  if (process.getuid?.() !== 0) {
    return 'the live demo needs root: it builds a lab of network namespaces (run `sudo npm run demo`)';
  }
  return null;
}

/** The firewall interface a node's traffic arrives on (for rules with `iface`). */
function ingressIface(role: NodeRole): string | undefined {
  return LAB_LINKS.find((l) => l.a.role === role && l.b.role === 'fw')?.b.iface;
}

export function scenarioDecider(policy: Policy): (s: Scenario) => ScenarioDecision {
  const engine = new Engine(policy);
  return (s) => {
    const d = engine.decide({
      proto: 6,
      src: s.src,
      dst: s.dst,
      srcPort: 40000,
      dstPort: s.port,
      iface: ingressIface(s.from),
    });
    return {
      rule: d.rule?.id ?? null,
      service: d.service,
      clientZone: d.clientZone,
      serverZone: d.serverZone,
    };
  };
}

/** A one-line progress display on a terminal: a spinner, the step and the elapsed time. Writes nothing
 * when stderr is not a terminal except the step names. */
export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private frame = 0;
  private text = '';
  private started = Date.now();
  private readonly tty = process.stderr.isTTY === true;
  step(text: string): void {
    this.text = text;
    this.started = Date.now();
    if (!this.tty) {
      process.stderr.write(`${pc.dim('demo:')} ${text}\n`);
      return;
    }
    if (!this.timer) this.timer = setInterval(() => this.draw(), 100);
    this.draw();
  }
  private draw(): void {
    const f = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'[this.frame++ % 10];
    const s = ((Date.now() - this.started) / 1000).toFixed(1);
    process.stderr.write(`\r\x1b[2K${pc.cyan(f ?? '')} ${this.text} ${pc.dim(`${s}s`)}`);
  }
  done(text?: string): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.tty) process.stderr.write(`\r\x1b[2K${text ? `${pc.green('✔')} ${text}\n` : ''}`);
    else if (text) process.stderr.write(`${pc.dim('demo:')} ${text}\n`);
  }
}

const MARK: Record<RowResult['status'], string> = {
  pass: pc.green('✔'),
  fail: pc.red('✘'),
  unavailable: pc.yellow('–'),
};
const LEGEND = `${MARK.pass} happened as the policy says   ${MARK.fail} did not   ${MARK.unavailable} not available yet in this tree`;

/** Splits words longer than a cell (session ids, service names) so the table wraps them instead of
 * cutting them off; other words wrap at spaces. */
function breakLong(text: string, width: number): string {
  return text.replace(new RegExp(`\\S{${width + 1},}`, 'g'), (w) =>
    w.match(new RegExp(`.{1,${width}}`, 'g'))!.join('\n'),
  );
}

export function renderRows(rows: RowResult[], tty: boolean): string {
  // about 130 columns: a common terminal width; cells wrap
  const t = new Table({
    head: ['', 'connection', 'policy decision', 'what happened', 'proof'],
    style: tty ? { head: ['bold'] } : { head: [], border: [] },
    colWidths: [4, 28, 30, 38, 30],
    wordWrap: true,
  });
  rows.forEach((r, i) => {
    const s = r.scenario;
    const dst = s.dst.includes(':') ? `[${s.dst}]` : s.dst;
    const counter = r.proof.find((l) => l.startsWith('nft chain'))?.replace(/^nft chain /, '') ?? '';
    t.push([
      `${i + 1}\n${MARK[r.status]}`,
      `${s.title}\n${pc.dim(`${s.from} ${s.src} → ${dst}:${s.port}`)}`,
      `${breakLong(r.decisionText, 28)}\n${pc.dim(breakLong(r.expected, 28))}`,
      breakLong(r.status === 'unavailable' ? r.client : `client: ${r.client}\nserver: ${r.server}`, 36),
      breakLong(r.sessionId ?? counter, 28),
    ]);
  });
  const proof: string[] = [];
  rows.forEach((r, i) => {
    if (r.status === 'unavailable') return;
    proof.push(
      `${pc.bold(`#${i + 1} ${r.scenario.title}`)}${r.sessionId ? ` — session ${r.sessionId}` : ''}`,
    );
    for (const l of r.proof.slice(0, 6)) proof.push(`    ${l.length > 220 ? `${l.slice(0, 217)}...` : l}`);
    if (r.proof.length > 6) proof.push(`    ... ${r.proof.length - 6} more lines`);
    for (const p of r.problems) proof.push(`    ${pc.red('problem:')} ${p}`);
  });
  return `${t.toString()}\n${LEGEND}\n\n${pc.bold('What proves it')} (tzorp's log, vsftpd's log, the firewall's counters):\n${proof.join('\n')}\n`;
}

export async function runLiveDemo(opts: LiveDemoOptions): Promise<LiveDemoResult> {
  const out = opts.out ?? process.stdout;
  const progress = new Progress();
  const policyFile = opts.policy ?? DEFAULT_LAB_POLICY;
  let labIsUp = false;
  try {
    progress.step(`checking ${policyFile}`);
    const loaded = await loadPolicyFile(policyFile);
    if (!loaded.policy) {
      // the first error's code; every error in the message
      throw new TzorpError(
        loaded.errors[0]?.id ?? 'INTERNAL',
        `the policy has errors:\n${loaded.errors.map((e) => `  ${e.message}`).join('\n')}`,
        { details: { errors: loaded.errors.map((e) => e.format()) } },
      );
    }
    const decide = scenarioDecider(loaded.policy);
    if (readLabState(opts.name)) {
      progress.step(`taking down the previous lab '${opts.name}'`);
      await labDown(opts.name);
    }
    const state = await labUp({ name: opts.name, policy: policyFile, onStep: (m) => progress.step(m) });
    labIsUp = true;
    progress.done(`lab '${opts.name}' is up (${state.firewall.detail})`);
    const rows: RowResult[] = [];
    for (const [i, s] of SCENARIOS.entries()) {
      progress.step(`[${i + 1}/${SCENARIOS.length}] ${s.title}`);
      rows.push(await runScenario({ state, decide }, s));
    }
    progress.done(`${rows.length} connections driven`);
    out.write(renderRows(rows, out.isTTY === true));
    return { rows, ok: rows.every((r) => r.status !== 'fail') };
  } finally {
    // always: a running spinner would keep the process alive after an error
    progress.done();
    if (opts.down && labIsUp) await labDown(opts.name);
  }
}
