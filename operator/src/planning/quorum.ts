// The static quorum: how many live workers the ShardMap needs before anything is
// (re)assigned. One definition for the operator and local mode. Pure.

/** A majority of `workers`: the quorum when none is stated (1 → 1, 2 → 2, 3 → 2, 4 → 3). */
export function majority(workers: number): number {
  return Math.floor(workers / 2) + 1;
}

/**
 * The quorum in force: the one stated (a ShardMap resource's `spec.quorum`), else
 * `defaultQuorum` (the chart passes a majority of the worker replicas), else a
 * majority of the workers known.
 */
export function effectiveQuorum(
  stated: { readonly quorum?: number } | undefined,
  defaultQuorum: number | undefined,
  knownMembers: number,
): number {
  return stated?.quorum ?? defaultQuorum ?? majority(knownMembers);
}
