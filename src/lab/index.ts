// Public surface of the lab: a network of namespaces with real servers and tzorp in the firewall
// (`tzorp lab`), used by the demo, the docs and the end-to-end tests.

export { liveDemoUnavailable, runLiveDemo } from './demo.ts';
export {
  DEFAULT_LAB_NAME,
  DEFAULT_LAB_POLICY,
  firewallTablePresent,
  type LabDownResult,
  LabError,
  type LabNodeStatus,
  type LabStatus,
  type LabUpOptions,
  labDown,
  labExecNamespace,
  labStatus,
  labUp,
  REPO_ROOT,
} from './lab.ts';
export type { ServerRecord } from './servers.ts';
export { checkLabName, type LabState, labStateDir, readLabState } from './state.ts';
export { runIn } from './system.ts';
export {
  isNodeRole,
  LAB_ADDR,
  LAB_LINKS,
  LAB_NODES,
  LAB_PORTS,
  type LabNode,
  NODE_ROLES,
  type NodeRole,
  nodeNamespace,
} from './topology.ts';
export { FTP_FILES } from './vsftpd.ts';
