import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1OwnerReference } from "@kubernetes/client-node";
import { controllerOwnerOf, withOwner } from "./lease-owner.js";

const statefulSet: V1OwnerReference = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  name: "berth-worker",
  uid: "5f1c0d7e-0000-4000-8000-000000000001",
};

describe("controllerOwnerOf", () => {
  test("copies the controller reference as a plain owner: no controller, no blockOwnerDeletion", () => {
    const owner = controllerOwnerOf({
      metadata: {
        name: "berth-worker-0",
        ownerReferences: [
          { apiVersion: "v1", kind: "ConfigMap", name: "other", uid: "u-other" },
          { ...statefulSet, controller: true, blockOwnerDeletion: true },
        ],
      },
    });
    assert.deepEqual(owner, statefulSet);
  });

  test("a pod without a controller (none, or owners that are not controllers) has no owner", () => {
    assert.equal(controllerOwnerOf({ metadata: { name: "bare" } }), undefined);
    assert.equal(controllerOwnerOf({}), undefined);
    assert.equal(
      controllerOwnerOf({
        metadata: { ownerReferences: [{ ...statefulSet, controller: false }] },
      }),
      undefined,
    );
    assert.equal(controllerOwnerOf({ metadata: { ownerReferences: [statefulSet] } }), undefined);
  });
});

describe("withOwner", () => {
  const replicaSet: V1OwnerReference = {
    apiVersion: "apps/v1",
    kind: "ReplicaSet",
    name: "berth-operator-7d9f",
    uid: "u-rs-new",
  };
  const oldReplicaSet = { ...replicaSet, name: "berth-operator-5c4b", uid: "u-rs-old" };

  test("adds the owner to none, or after the owners already there", () => {
    assert.deepEqual(withOwner(undefined, replicaSet), [replicaSet]);
    assert.deepEqual(withOwner([], replicaSet), [replicaSet]);
    assert.deepEqual(withOwner([oldReplicaSet], replicaSet), [oldReplicaSet, replicaSet]);
  });

  test("an owner with the same uid is not added twice, whatever else differs", () => {
    const renamed = { ...replicaSet, name: "stale-name" };
    assert.deepEqual(withOwner([renamed], replicaSet), [renamed]);
  });

  test("no owner keeps what is there, and undefined stays undefined", () => {
    assert.equal(withOwner(undefined, undefined), undefined);
    assert.deepEqual(withOwner([oldReplicaSet], undefined), [oldReplicaSet]);
  });

  test("never changes the list it was given", () => {
    const given = [oldReplicaSet];
    withOwner(given, replicaSet);
    assert.deepEqual(given, [oldReplicaSet]);
  });
});
