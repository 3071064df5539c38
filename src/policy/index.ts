// Public surface of the policy module: the resolved model, the loader and lint.
export { canonicalAddress, formatAddress, parseAddress, parseCidr } from './address.ts';
export { loadPolicyFile } from './file.ts';
export { byPosition, type LoadOptions, type LoadResult, loadPolicyText } from './load.ts';
export * from './model.ts';
