// The core kit: the sans-IO contract (types.ts) and what every protocol core is built from.
export * from './assert-never.ts';
export * from './glob.ts';
export * from './module.ts';
export * from './outbox.ts';
export * from './state.ts';
export * from './types.ts';
