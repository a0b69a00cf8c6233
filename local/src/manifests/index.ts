// CapacityPool manifests: parse and validate YAML into internal.PoolSpec messages.
export {
  CAPACITY_POOL_API_VERSION,
  CAPACITY_POOL_KIND,
  mergePoolManifests,
  type PoolManifest,
  parseCapacityPools,
} from "./capacity-pool.js";
export { formatProblem, ManifestError, type ManifestProblem } from "./errors.js";
export { expandManifestPaths, loadPoolManifests } from "./load.js";
