// Public surface of the policy module: the resolved model (and, as it lands, the loader and lint).
export * from './model.ts';
