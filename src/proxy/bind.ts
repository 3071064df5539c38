// The policy step that binds proxy options: every proxy service's options go through its module's
// parser once per generation. Problems are reported together, each at its option's file:line:column;
// the typed options are kept (in the generation) and every session of the service is created with them.
import { TzorpError } from '../errors.ts';
import { byPosition, type Policy, type ProxyService, type SourcePos } from '../policy/index.ts';
import { OptionProblems } from './core/module.ts';
import type { CoreFactory, TlsEndpoint } from './core/types.ts';
import type { FtpOptions } from './ftp/index.ts';
import { proxyModule } from './registry.ts';
import type { TlsFile } from './tls/endpoint.ts';
import { compileTls, inspectEndpoint, TlsInspectGate, TlsPassthroughGate } from './tls/index.ts';

export interface BoundProxy {
  /** The proxy's name (the policy's `proxy:`). */
  proxy: string;
  /** The typed options its parser returned. */
  options: unknown;
  /** One session's core, with those options. */
  createCore: CoreFactory;
}

export interface BoundProxies {
  /** Proxy service name -> its bound proxy (only services without problems). */
  services: Map<string, BoundProxy>;
  /** Unknown proxies and option problems, positioned; empty when every service bound. */
  errors: TzorpError[];
}

export function bindProxies(policy: Policy): BoundProxies {
  const services = new Map<string, BoundProxy>();
  const errors: TzorpError[] = [];
  for (const s of policy.services.values()) {
    if (s.type !== 'proxy') continue;
    const mod = proxyModule(s.proxy);
    if (!mod) {
      errors.push(
        new TzorpError(
          'POLICY_BAD_SERVICE',
          `service ${s.name}: tzorp has no proxy named ${JSON.stringify(s.proxy)}`,
          {
            pos: s.pos,
          },
        ),
      );
      continue;
    }
    const options = mod.parseOptions(s.options);
    if (options instanceof OptionProblems) {
      for (const p of options.problems) {
        errors.push(
          new TzorpError(p.id, `service ${s.name} (${s.proxy} options): ${p.message}`, {
            pos: optionPos(s, p.path),
          }),
        );
      }
      continue;
    }
    const misfit = mod.routerProblem?.(s.router.type, options);
    if (misfit) {
      errors.push(
        new TzorpError(misfit.id, `service ${s.name} (${s.proxy}): ${misfit.message}`, {
          pos: misfit.path ? optionPos(s, misfit.path) : s.pos,
        }),
      );
      continue;
    }
    // A `tls:` block puts the TLS layer in front of the proxy's own core (passthrough: decide on the
    // ClientHello, then the proxy relays every byte unchanged; inspect: terminate, originate, and the
    // proxy runs on the plaintext).
    let createCore: CoreFactory = (context) => mod.create(context, options);
    if (s.tls?.mode === 'passthrough') {
      const tls = compileTls(s.tls);
      createCore = (context) => new TlsPassthroughGate(tls, mod.create(context, options));
    } else if (s.tls?.mode === 'inspect') {
      const tls = compileTls(s.tls);
      let endpoint: TlsEndpoint;
      try {
        endpoint = inspectEndpoint(s.tls);
      } catch (e) {
        // at the line naming the file (ca.cert, ca.key, server_ca_file) when the problem is one file's
        const file = e instanceof TzorpError ? (e.details?.file as TlsFile | undefined) : undefined;
        errors.push(
          new TzorpError('TLS_CERTIFICATE', `service ${s.name} tls: ${(e as Error).message}`, {
            pos: (file && s.tls.filePos?.[file]) ?? s.tls.pos,
          }),
        );
        continue;
      }
      const alpn = s.proxy === 'http' ? ['http/1.1'] : undefined;
      if (s.proxy === 'ftp') {
        // FTP starts its TLS itself (AUTH TLS or implicit FTPS, then each protected data channel)
        const o = options as FtpOptions;
        if (!o.transparentMode || s.router.type === 'inband') {
          errors.push(
            new TzorpError(
              'POLICY_BAD_SERVICE',
              `service ${s.name}: tls mode 'inspect' on FTP needs a transparent FTP service (a non-transparent one learns its server only after the client's TLS; not supported in this version of tzorp)`,
              { pos: s.tls.pos },
            ),
          );
          continue;
        }
        const inspect: FtpOptions = {
          ...o,
          tls: { policy: tls, endpoint, implicit: s.tls.implicit ?? 'auto' },
        };
        createCore = (context) => mod.create(context, inspect);
      } else if (s.proxy === 'http' && !(options as { transparentMode?: boolean }).transparentMode) {
        // an explicit proxy: plain HTTP outside, and each CONNECT tunnel inspected by a nested session
        // whose HTTP core reads the tunnel's requests as a transparent proxy would (origin form)
        const inner = { ...(options as object), transparentMode: true } as typeof options;
        createCore = (context) =>
          mod.create(
            {
              ...context,
              inspectConnect: (target, name) =>
                new TlsInspectGate(
                  tls,
                  mod.create({ ...context, inband: false, clientLocal: target, tls: true }, inner),
                  endpoint,
                  alpn,
                  name,
                ),
            },
            options,
          );
      } else
        createCore = (context) =>
          new TlsInspectGate(tls, mod.create({ ...context, tls: true }, options), endpoint, alpn);
    }
    services.set(s.name, { proxy: s.proxy, options, createCore });
  }
  // In file order, as an editor lists them.
  return { services, errors: byPosition(errors) };
}

/** Where an option was written: the longest known prefix of its path, else the service itself. */
function optionPos(s: ProxyService, path: string): SourcePos {
  const known = s.optionPositions;
  for (let p: string | null = path; known && p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : null) {
    const at = known.get(p);
    if (at) return at;
  }
  return s.pos;
}
