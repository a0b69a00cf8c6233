import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UsageError } from "@berth/common";
import { parseOperatorArgs, USAGE } from "./main.js";

describe("operator flags: --lease-owner-pod", () => {
  test("names this replica's pod; absent: no owner", () => {
    const args = parseOperatorArgs(["--lease-owner-pod", "berth-operator-6b7f9-x2kq4"], {});
    assert.ok(args !== "help");
    assert.equal(args.leaseOwnerPod, "berth-operator-6b7f9-x2kq4");
    const none = parseOperatorArgs([], {});
    assert.ok(none !== "help");
    assert.equal(none.leaseOwnerPod, undefined);
    assert.match(USAGE, /--lease-owner-pod/);
  });

  test("a value that is no pod name is refused with a precise message", () => {
    assert.throws(
      () => parseOperatorArgs(["--lease-owner-pod", "$(POD_NAME)"], {}),
      (e: unknown) =>
        e instanceof UsageError &&
        e.name === "UsageError" &&
        /--lease-owner-pod "\$\(POD_NAME\)" is not a pod name/.test(e.message),
    );
  });
});
