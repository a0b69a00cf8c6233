// Local implementations of the CEL rules in the API schemas. kube-apiserver
// evaluates the CEL; local mode has no CEL interpreter, so each rule used in a
// schema is implemented here too, and validation refuses a schema whose rule has
// no implementation (a test runs every rule through both, against a real API server).
import { compareTimestamps, parseRfc3339 } from "@berth/proto";

/** Evaluates one rule on a node that already passed its schema: true when it holds. */
export type LocalRule = (self: unknown, oldSelf: unknown) => boolean;

const field = (v: unknown, k: string): unknown =>
  typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined;

/** Every CEL rule Berth's schemas use, by its exact text. */
export const LOCAL_RULES: Readonly<Record<string, LocalRule>> = {
  "self.start < self.end": (self) => {
    const start = parseRfc3339(String(field(self, "start")));
    const end = parseRfc3339(String(field(self, "end")));
    return start !== undefined && end !== undefined && compareTimestamps(start, end) < 0;
  },
  // A transition rule: it holds on create (no old object) and whenever the value is unchanged.
  "self.shardCount == oldSelf.shardCount": (self, oldSelf) =>
    oldSelf === undefined || field(self, "shardCount") === field(oldSelf, "shardCount"),
};
