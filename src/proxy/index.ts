// Public surface of the proxies: the registry (proxy name -> module), the policy step that binds each
// service's options once per generation, and the kit's module contract.
export { type BoundProxies, type BoundProxy, bindProxies } from './bind.ts';
export { bindCore, type OptionProblem, OptionProblems, type ProxyModule } from './core/module.ts';
export { PROXIES, proxyModule } from './registry.ts';
