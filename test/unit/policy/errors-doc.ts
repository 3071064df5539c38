// Generates docs/errors.md from the catalogue in src/errors.ts (one section per code, in code order),
// with the explanations below for the policy codes. Rewrite the page with
//   node --import tsx test/unit/policy/errors-doc.ts
// test/unit/policy/docs.test.ts fails when the page is not current.
import { writeFileSync } from 'node:fs';
import { type CatalogueEntry, E, type ErrorKind } from '../../../src/errors.ts';

const KIND: Record<ErrorKind, string> = {
  user: 'your policy, configuration or request: fix it and retry; all such errors are reported together',
  peer: 'a client or server broke the protocol or the policy: it gets a protocol answer and the connection is closed',
  env: 'the environment: permissions, kernel, tools, sockets or the daemon',
  ours: 'a bug in tzorp: one session ends, the daemon keeps running; please report it with the log line',
};

/** What the codes mean and what to do (the page's reason to exist beyond the titles). */
const DETAILS: Record<string, string> = {
  TZ5011:
    "A session's connection on native socket I/O (docs/native.md) failed: the peer reset it, a write found it closed, or a connect was refused. The message is the system call and the error, as Node words them (`read ECONNRESET`, `connect ECONNREFUSED 198.18.2.3:80`); `details.code` is the error's name. The session ends as it would on Node's sockets.",
  TZ1001:
    'The file does not exist, is not a regular file or is not readable. Check the path and permissions.',
  TZ1002:
    'The file is not valid YAML (or JSON), or not UTF-8. The position is where the parser gave up; the mistake is often just before it (an unclosed bracket or quote, a tab in the indentation, `key: value` with an unquoted `: ` or `, ` inside a flow mapping). YAML aliases are limited (100, and no expansion beyond the size of the file).',
  TZ1003:
    'Policies larger than 64 MiB are refused before they are read; YAML policies larger than 8 MiB are refused because the YAML parser needs about 100 bytes of memory per byte. Write large generated policies as JSON (a JSON document is valid policy syntax).',
  TZ1004:
    'More than 1000 errors (or warnings): the first 1000 are shown and the rest counted. Fix those and check again.',
  TZ1010:
    'A field has the wrong type, e.g. a list where a mapping is expected, a quoted `"true"` where a boolean is expected, or a word where a number is expected.',
  TZ1011:
    'The field is not part of the policy language at that place; the message suggests the closest known name. Under a proxy service, unknown names are taken as per-proxy options unless they look like a misspelt service field.',
  TZ1012:
    "A required field is missing: a service `type`, a proxy service's `proxy`, a rule's `service`, a directed router's `targets`.",
  TZ1013:
    'A value is not one of the allowed ones or out of range: service and router types, deny methods, protocols, names (letters, digits, `_`, `.`, `-`, at most 64 characters), interface names, rule ids (1 to 2147483647: the id travels in the packet mark below the tproxy bit), empty lists.',
  TZ1020:
    'Not an address or network. IPv4 is four decimal numbers 0-255 without leading zeros (`010.1.1.1` is refused: inet_aton would read it as octal), the prefix length is 0-32 (IPv4) or 0-128 (IPv6); zone ids (`%eth0`) are not accepted. A bare address is a /32 or /128. Host bits are masked with a warning (TZ1505).',
  TZ1021: 'Not a port (0-65535) or an inclusive range `"lo-hi"` with lo <= hi.',
  TZ1022: 'A router target is not `address:port` (IPv6 as `[address]:port`, port 1-65535).',
  TZ1030:
    'Each network (masked address and prefix length) may belong to one zone only, as in KZorp; this includes a /0 per family (KZorp does not notice two, tzorp refuses them) and the same network listed twice in one zone.',
  TZ1031:
    'A rule, management or bypass rule, `parent` or `limit_target_zones_to` names a zone that is not defined.',
  TZ1032: 'Zone parents form a cycle; the message shows it. Every hierarchy must end at a root zone.',
  TZ1033: 'A zone is more than 31 levels deep (KZorp keeps the depth in 5 bits of the score).',
  TZ1034: 'A zone, a service, a field of one entry or a proxy option is defined twice.',
  TZ1040: 'A rule names a service that is not defined.',
  TZ1041:
    'A service is inconsistent: a forward service with an inband router, a forward directed router with more than one target, forge_port or forced_port on a forward service, two proxy services on one listener port, a proxy name tzorp does not have, per-proxy options the proxy module refuses, or a router the proxy cannot use (`proxy: plug` with an inband router; HTTP `transparent_mode: false`, an explicit proxy, without an inband router): each would fail on every connection.',
  TZ1050: 'Two rules have the same explicit `id`.',
  TZ1051:
    'No automatic rule id is left below the tproxy mark: give the rule an explicit id or use a higher tproxy_mark.',
  TZ1060:
    'A setting is out of range: service_mark_mask must be one run of bits not overlapping tproxy_mark and large enough for the services, the routing table must not be 253-255, listener ports must stay <= 65535.',
  TZ1501:
    'Warning. Another rule matches every connection this rule matches, with at least the same score in every field of the score, and wins ties by its lower id: this rule is never selected. Delete it, or make it more specific than the other one.',
  TZ1502:
    'Warning. Some connection matches both rules with exactly the same score; the lower id wins (KZorp logs "found rules with same score"). Make one more specific if the other service is wanted there.',
  TZ1503:
    'Warning. No rule, management or bypass rule or limit_target_zones_to names the zone, one of its ancestors or descendants.',
  TZ1504: 'Warning. No rule uses the service.',
  TZ1505:
    'Warning. A network was written with host bits set (`198.18.1.7/24`); it is used as the masked network (`198.18.1.0/24`), as KZorp does.',
  TZ1506:
    "Warning. The rule's conditions contradict each other (ICMP type/code with a non-ICMP protocol, ports on a protocol without ports): it matches nothing.",
  TZ1524:
    'Warning. A rule whose service is a proxy (plug, HTTP, FTP) has no `proto`, or lists `udp`: the kernel diverts every connection the rule matches to the proxy, and the proxies speak TCP only, so each UDP connection it matches fails there. Add `proto: tcp` to the rule, and give the UDP traffic a rule of its own (a forward or deny service).',
  TZ1525:
    'Warning. A rule of a deny service does not refuse all the traffic it matches: for some connections (the warning names one) a more specific rule of another service wins under best match, typically an allow rule that names a port where the deny rule names none. A deny rule only wins where it is at least as specific as the rules it should beat. To refuse traffic whatever the rules say, list it under `block:` (docs/policy.md).',
  TZ1530:
    "Warning. A proxy service's `tls` block sets `server_verify: false`: tzorp accepts whatever certificate the server presents, so anyone between tzorp and the server can read and change the traffic. Leave it on and give `server_ca_file` for private CAs.",
  TZ1531:
    'Warning. A `tls` setting that only inspect mode uses (`ca`, `server_verify`, `server_ca_file`) is given in passthrough mode, where tzorp never terminates TLS: it has no effect.',
  TZ3008:
    '`reload` after `stop` was asked (the daemon is draining or stopped). `status`, `sessions`, `log` and `stop` are still answered while it drains.',
  TZ3009:
    'The daemon has not finished starting (workers, listeners and the kernel ruleset of generation 1): only `status` is answered. Wait until `tzorp status` says `running`.',
  TZ3010:
    'A worker process did not start in time, exited, or was asked something before it was initialised. The daemon starts a worker that died again after a second; the log says why it exited.',
  TZ3011:
    "The control socket's answer was not one JSON line: another program answers on that path, or the daemon is a different version.",
  TZ3012: 'A command-line option has a value the command cannot use; the message names the option.',
  TZ6001:
    'A command `tzorp lab` runs (ip, nft, vsftpd, the lab servers, tzorp itself) is not installed, failed, or did not become ready in time. The message has its output; `node scripts/setup.mjs` installs what the lab needs.',
  TZ6002:
    "The lab's state file does not describe a lab of that name. `tzorp lab down --name NAME` removes what is left of it.",
  TZ1520:
    'Warning. The policy has no `management` section. The input chain drops everything that is not a management entry or diverted to a proxy, so once the policy is applied nothing reaches the firewall itself, the SSH session that applied it included. Add e.g. `management: [{ proto: tcp, dst_port: 22, src_zone: admin }]`; management entries win over every rule for traffic to the firewall (docs/kernel.md).',
  TZ1521:
    'Warning. The `management` section is an empty list: as TZ1520, nothing reaches the firewall itself once the policy is applied. Write the entries, or remove the key if that is really meant.',
  TZ1522:
    "Warning. A directed forward service without `forge_addr: true` is masqueraded: the server sees every client as the firewall's address, which hides who connects (logs, limits, blocklists on the server stop working). For port forwarding into a DMZ, `router: { type: directed, targets: [...], forge_addr: true }` keeps the client's address.",
  TZ1523:
    "Warning. Every destination zone of the rule lies outside its proxy service's `limit_target_zones_to` (neither the zone, an ancestor nor a descendant is listed), so the proxy refuses each connection the kernel sends it. Add the zone to the list or send the rule to another service.",
};

function section(e: CatalogueEntry): string {
  const lines = [`## ${e.code}`, '', `**${e.title}** (kind: ${e.kind})`, ''];
  const d = DETAILS[e.code];
  if (d) lines.push(d, '');
  return lines.join('\n');
}

export function errorsMarkdown(): string {
  const entries = Object.values(E as Record<string, CatalogueEntry>).sort((a, b) =>
    a.code < b.code ? -1 : 1,
  );
  const head = [
    '# Error codes',
    '',
    'Every error tzorp reports has a stable code `TZxxxx` from one catalogue (`src/errors.ts`). Policy',
    'problems are printed as `file:line:col: CODE message`, all of them at once (`tzorp check`, see',
    '[policy.md](policy.md)); warnings (TZ15xx) do not make a policy invalid.',
    '',
    'Ranges: TZ1xxx policy (TZ15xx warnings), TZ2xxx kernel, TZ3xxx daemon, control and command line,',
    'TZ4xxx proxies, TZ5xxx native and network, TZ6xxx lab, TZ9xxx internal. Kinds: **user** (fix the',
    'input), **peer** (a client or server misbehaved), **env** (permissions, kernel, tools), **ours** (a bug):',
    '',
    ...Object.entries(KIND).map(([k, v]) => `- **${k}**: ${v}.`),
    '',
    '(This page is generated from the catalogue: `node --import tsx test/unit/policy/errors-doc.ts`.)',
    '',
  ];
  return `${[...head, ...entries.map(section)].join('\n').trimEnd()}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL('../../../docs/errors.md', import.meta.url), errorsMarkdown());
}
