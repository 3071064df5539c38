// The JSON Schema (draft 2020-12) of the policy format, generated from the loader's own field lists
// (fields.ts), so editors see exactly the names the loader accepts. schema/tzorp-policy.schema.json is
// this object written out (schema/generate.ts); a test keeps the file current. The loader stays the
// authority on values (CIDR strictness, references, ranges): the schema describes shapes.

import { TzorpError } from '../errors.ts';
import {
  CHAINER_FIELDS,
  CHAINER_TYPES,
  CONDITION_NAMES,
  type ConditionField,
  FORGE_PORT_WORDS,
  MAX_IFNAME_CHARS,
  MAX_NAME_CHARS,
  NAME_PATTERN,
  PROTO_NAMES,
  PROXY_SERVICE_FIELDS,
  ROUTER_FIELDS,
  ROUTER_TYPES,
  SETTINGS_FIELDS,
  TLS_CA_FIELDS,
  TLS_FIELDS,
  TLS_SNI_FIELDS,
  ZONE_FIELDS,
} from './fields.ts';
import { DENY_V4, DENY_V6, TLS_MIN_VERSIONS, TLS_MODES, TLS_SNI_MISSING } from './model.ts';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/$defs/${name}` });
const oneOrMany = (item: Schema): Schema => ({ anyOf: [item, { type: 'array', items: item, minItems: 1 }] });
const str = (description: string): Schema => ({ type: 'string', description });
const int = (minimum: number, maximum: number, description: string): Schema => ({
  type: 'integer',
  minimum,
  maximum,
  description,
});

const CONDITION_SCHEMAS: Record<ConditionField, Schema> = {
  reqid: oneOrMany(int(1, 0xffffffff, 'IPsec SA reqid of the packet')),
  iface: oneOrMany(ref('ifname')),
  ifgroup: oneOrMany(ref('u32')),
  proto: oneOrMany(ref('proto')),
  icmp_type: oneOrMany(int(0, 255, 'ICMP/ICMPv6 type (never matches other protocols)')),
  icmp_code: oneOrMany(int(0, 255, 'ICMP/ICMPv6 code')),
  src_port: oneOrMany(ref('port')),
  dst_port: oneOrMany(ref('port')),
  src_subnet: oneOrMany(ref('cidr')),
  src_zone: oneOrMany(ref('name')),
  dst_subnet: oneOrMany(ref('cidr')),
  dst_iface: oneOrMany(ref('ifname')),
  dst_ifgroup: oneOrMany(ref('u32')),
  dst_zone: oneOrMany(ref('name')),
};

function conditions(extra: Record<string, Schema>, required: string[] = []): Schema {
  const properties: Record<string, Schema> = { ...extra };
  for (const f of CONDITION_NAMES) properties[f] = CONDITION_SCHEMAS[f];
  return { type: 'object', additionalProperties: false, required, properties };
}

const ROUTER_PROPS: Record<string, Schema> = {
  forced_port: int(1, 65535, 'transparent: connect to this port instead of the original one'),
  forge_addr: { type: 'boolean', description: "connect from the client's address" },
  forge_port: {
    anyOf: [{ enum: [...FORGE_PORT_WORDS] }, int(1, 65535, 'a fixed source port')],
    description: 'source port of the server-side connection',
  },
  targets: oneOrMany({ type: 'string', description: 'address:port or [v6]:port' }),
  default_port: int(1, 65535, 'inband: port when the protocol names none'),
};
const CHAINER_PROPS: Record<string, Schema> = {
  timeout_connect: int(1, 2 ** 31 - 1, 'connect timeout in milliseconds'),
  timeout_state: int(0, 2 ** 31 - 1, 'how long a failed target is skipped, in milliseconds'),
};

function typed(
  kinds: readonly string[],
  fields: Record<string, readonly string[]>,
  props: Record<string, Schema>,
) {
  return {
    anyOf: [
      { enum: [...kinds], description: 'shorthand for { type: ... }' },
      ...kinds.map((k) => ({
        type: 'object',
        additionalProperties: false,
        properties: Object.fromEntries(
          (fields[k] as readonly string[]).map((f) => [
            f,
            f === 'type' ? { const: k } : (props[f] as Schema),
          ]),
        ),
      })),
    ],
  };
}

/** A proxy service's `tls:` block (docs/tls.md). */
function tlsSchema(): Schema {
  const glob = { type: 'string', pattern: '^[A-Za-z0-9_*?.-]{1,253}$', description: 'host name glob' };
  const props: Record<string, Schema> = {
    mode: { enum: [...TLS_MODES], description: 'passthrough: decide on the ClientHello, relay unchanged' },
    ca: {
      type: 'object',
      additionalProperties: false,
      required: [...TLS_CA_FIELDS],
      properties: { cert: str('CA certificate (PEM) file'), key: str('CA private key (PEM) file') },
    },
    server_verify: { type: 'boolean', description: "verify the server's certificate (default true)" },
    server_ca_file: str('trust anchors for server verification (default: the system bundle)'),
    sni: {
      type: 'object',
      additionalProperties: false,
      properties: {
        allow: oneOrMany(glob),
        deny: oneOrMany(glob),
        missing: { enum: [...TLS_SNI_MISSING], description: 'a ClientHello without a server name' },
      },
    },
    min_version: { enum: [...TLS_MIN_VERSIONS] },
    implicit: {
      enum: [true, false, 'auto'],
      description:
        "FTP: TLS from the first byte (implicit FTPS); 'auto' (default): when the client dialled port 990",
    },
  };
  for (const f of TLS_FIELDS) if (!(f in props)) throw new TzorpError('INTERNAL', `schema: tls ${f} missing`);
  for (const f of TLS_SNI_FIELDS)
    if (!(f in (props.sni as { properties: Schema }).properties))
      throw new TzorpError('INTERNAL', `schema: tls sni ${f} missing`);
  return { type: 'object', additionalProperties: false, required: ['mode'], properties: props };
}

export function policySchema(): Schema {
  const common = {
    type: { type: 'string' },
    logging: { type: 'boolean', description: "log the kernel's decision (default true)" },
    description: str('free text'),
  };
  const proxyProps: Record<string, Schema> = {
    ...common,
    type: { const: 'proxy' },
    proxy: str('proxy module: plug, http, ftp'),
    router: ref('router'),
    chainer: ref('chainer'),
    options: { type: 'object', description: 'per-proxy options (see the proxy docs)' },
    limit_target_zones_to: oneOrMany(ref('name')),
    max_sessions: int(0, 2 ** 31 - 1, 'concurrent sessions, 0 = unlimited'),
    max_sessions_per_client: int(0, 2 ** 31 - 1, 'concurrent sessions per client address, 0 = unlimited'),
    new_sessions_per_client: {
      type: ['object', 'null'],
      description: 'new sessions one client address may start: at most rate per per_seconds seconds',
      additionalProperties: false,
      required: ['rate'],
      properties: {
        rate: int(1, 1_000_000, 'sessions'),
        per_seconds: int(1, 3600, 'the period in seconds (default 1)'),
      },
    },
    listen_port: int(1, 65535, "the daemon's listener port for this service"),
    tls: ref('tls'),
    native_relay: {
      type: 'boolean',
      description: 'copy bytes with the native splice relay once a session only copies (default true)',
    },
  };
  // the loader's list and the schema's names come from one place
  for (const f of PROXY_SERVICE_FIELDS)
    if (!(f in proxyProps)) throw new TzorpError('INTERNAL', `schema: ${f} missing`);
  const zoneProps: Record<string, Schema> = {
    addresses: oneOrMany(ref('cidr')),
    parent: { anyOf: [ref('name'), { type: 'null' }] },
    description: str('free text'),
  };
  for (const f of ZONE_FIELDS)
    if (!(f in zoneProps)) throw new TzorpError('INTERNAL', `schema: ${f} missing`);
  const settingsProps: Record<string, Schema> = {
    tproxy_mark: ref('mark'),
    service_mark_mask: ref('mark'),
    routing_table: int(1, 0xffffffff, 'routing table for `local default dev lo` (not 253-255)'),
    listen_v4: str('IPv4 address the proxy listeners bind to'),
    listen_v6: str('IPv6 address the proxy listeners bind to'),
    listen_port_base: int(1, 65535, 'first listener port (service id i gets base + i - 1)'),
    user_rules: str(
      'a file of your own nft chains/sets placed inside table inet tzorp by `tzorp run` and every reload (relative to the policy file)',
    ),
    publish_zone_sets: {
      description:
        'zones published as nft sets for your own rules: referenced (by --user-rules and the ruleset), all, or a list of zones (plus the referenced)',
      anyOf: [{ enum: ['referenced', 'all'] }, { type: 'array', items: ref('name') }],
    },
  };
  for (const f of SETTINGS_FIELDS)
    if (!(f in settingsProps)) throw new TzorpError('INTERNAL', `schema: ${f} missing`);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'urn:tzorp:policy-schema',
    title: 'tzorp policy',
    description: 'Zones, services and rules of a tzorp firewall (docs/policy.md).',
    type: ['object', 'null'],
    additionalProperties: false,
    properties: {
      zones: { type: ['object', 'null'], propertyNames: ref('name'), additionalProperties: ref('zone') },
      services: {
        type: ['object', 'null'],
        propertyNames: ref('name'),
        additionalProperties: ref('service'),
      },
      rules: { type: ['array', 'null'], items: ref('rule') },
      management: { type: ['array', 'null'], items: ref('management') },
      bypass: { type: ['array', 'null'], items: ref('bypass') },
      block: { type: ['array', 'null'], items: ref('block') },
      settings: { type: ['object', 'null'], additionalProperties: false, properties: settingsProps },
    },
    $defs: {
      name: {
        type: 'string',
        pattern: NAME_PATTERN.source,
        maxLength: MAX_NAME_CHARS,
        description: 'a zone or service name',
      },
      cidr: {
        type: 'string',
        description: 'an IPv4 or IPv6 address or network (a.b.c.d[/n], x:y::z[/n]); a bare address is a host',
      },
      port: {
        anyOf: [int(0, 65535, 'a port'), { type: 'string', pattern: '^\\s*[0-9]+\\s*(-\\s*[0-9]+\\s*)?$' }],
        description: 'a port or an inclusive range "lo-hi"',
      },
      proto: {
        anyOf: [{ enum: Object.keys(PROTO_NAMES) }, int(0, 255, 'an IP protocol number')],
      },
      ifname: { type: 'string', minLength: 1, maxLength: MAX_IFNAME_CHARS, pattern: '^[^\\s/:]+$' },
      u32: {
        anyOf: [int(0, 0xffffffff, 'an interface group'), { type: 'string', pattern: '^0[xX][0-9a-fA-F]+$' }],
      },
      mark: {
        anyOf: [int(1, 0xffffffff, 'a 32-bit mark'), { type: 'string', pattern: '^0[xX][0-9a-fA-F]{1,8}$' }],
      },
      zone: { type: ['object', 'null'], additionalProperties: false, properties: zoneProps },
      tls: tlsSchema(),
      router: typed(ROUTER_TYPES, ROUTER_FIELDS, ROUTER_PROPS),
      chainer: typed(CHAINER_TYPES, CHAINER_FIELDS, CHAINER_PROPS),
      service: {
        oneOf: [
          {
            type: 'object',
            required: ['type', 'proxy'],
            properties: proxyProps,
            // other keys are per-proxy options too (the proxy module checks them)
            additionalProperties: true,
          },
          {
            type: 'object',
            required: ['type'],
            additionalProperties: false,
            properties: {
              ...common,
              type: { const: 'forward' },
              router: ref('router'),
              forge_addr: { type: 'boolean' },
            },
          },
          {
            type: 'object',
            required: ['type'],
            additionalProperties: false,
            properties: {
              ...common,
              type: { const: 'deny' },
              ipv4: { enum: [...DENY_V4], default: 'drop' },
              ipv6: { enum: [...DENY_V6], default: 'drop' },
            },
          },
        ],
      },
      rule: conditions(
        {
          id: int(1, 0x7fffffff, 'rule id (default: the smallest unused)'),
          service: ref('name'),
          description: str('free text'),
        },
        ['service'],
      ),
      management: conditions({ description: str('free text') }),
      bypass: conditions({ description: str('free text') }),
      block: conditions({ description: str('free text') }),
    },
  };
}
