import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sameZones } from '../../../src/daemon/primary.ts';
import type { Policy, Zone } from '../../../src/policy/index.ts';
import { cidr } from '../kernel/fixtures.ts';

function zones(edit: (z: Zone[]) => void = () => {}): Policy['zones'] {
  const list: Zone[] = [
    {
      name: 'a',
      parent: null,
      children: ['a.b'],
      depth: 1,
      addresses: [cidr('198.18.1.0/24'), cidr('2001:db8:1::/48')],
      pos: { file: 'p.yaml', line: 2, col: 3 },
      description: 'clients',
    },
    {
      name: 'a.b',
      parent: 'a',
      children: [],
      depth: 2,
      addresses: [cidr('198.18.1.0/25')],
      pos: { file: 'p.yaml', line: 5, col: 3 },
    },
    {
      name: 'c',
      parent: null,
      children: [],
      depth: 1,
      addresses: [],
      pos: { file: 'p.yaml', line: 8, col: 3 },
    },
  ];
  edit(list);
  return new Map(list.map((z) => [z.name, z]));
}

test('sameZones: equal zones made apart are the same; any difference a worker would use is not', () => {
  const base = zones();
  assert.ok(sameZones(base, base));
  assert.ok(sameZones(base, zones()), 'equal values in other objects');
  const differences: [string, (z: Zone[]) => void][] = [
    ['a network', (z) => (z[1]!.addresses = [cidr('198.18.1.128/25')])],
    ['one network more', (z) => z[2]!.addresses.push(cidr('198.18.9.0/24'))],
    ['the order of networks', (z) => z[0]!.addresses.reverse()],
    ['a parent', (z) => (z[1]!.parent = 'c')],
    ['children', (z) => (z[0]!.children = [])],
    ['a depth', (z) => (z[1]!.depth = 1)],
    ['a description', (z) => (z[0]!.description = 'other')],
    ['no description', (z) => delete z[0]!.description],
    ['a position', (z) => (z[2]!.pos = { file: 'p.yaml', line: 9, col: 3 })],
    ['a file', (z) => (z[2]!.pos = { file: 'q.yaml', line: 8, col: 3 })],
    ['a name', (z) => (z[2]!.name = 'd')],
    ['the order of zones', (z) => z.reverse()],
    ['one zone fewer', (z) => z.pop()],
  ];
  for (const [what, edit] of differences) assert.equal(sameZones(base, zones(edit)), false, what);
});
