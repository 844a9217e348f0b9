// The managed-disk flow: a disk imported from a blob, written through a Write SAS, two incremental
// snapshots, Read SAS grants, the md- blobs read, listed and diffed through them, a replica built by
// Put Page From URL, revocation and deletion.

import {
  AnonymousCredential,
  BlobServiceClient,
  PageBlobClient,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";

import { armFetch, armUrl, lro } from "./arm_client.mjs";
import { PIPELINE, allPages, download, pageOf } from "./blob_helpers.mjs";
import { check, expect, expectBytes, expectError, expectSame } from "./checks.mjs";
import { BLOB, KEY, RUN, SUB } from "./env.mjs";
import { MiB, PAGE, PageModel, pattern } from "./page_model.mjs";

export async function managedDiskFlow() {
  const group = `js-rg-${RUN}`;
  const prefix = `/subscriptions/${SUB}/resourceGroups/${group}/providers/Microsoft.Compute`;
  const diskPath = `${prefix}/disks/jsdisk`;
  const storage = `/subscriptions/${SUB}/resourceGroups/${group}/providers/Microsoft.Storage`;
  const size = 16 * MiB; // data; the VHD's 512-byte footer follows it in the imported blob

  // The import source: a page blob in an ordinary account, written with Shared Key.
  const account = `jsimp${RUN}`;
  const key = new StorageSharedKeyCredential(account, KEY);
  const container = new BlobServiceClient(`${BLOB}/${account}`, key, PIPELINE).getContainerClient("vhds");
  const source = container.getPageBlobClient("source.vhd");
  const disk = new PageModel(size + PAGE);
  await check("ARM: import source written", async () => {
    await container.create();
    await source.create(size + PAGE);
    for (const [offset, length, seed] of [
      [0, 4 * PAGE, 51],
      [3 * MiB, MiB, 52],
      [9 * MiB + PAGE, 6 * PAGE, 53],
    ]) {
      const data = pattern(seed, length);
      await source.uploadPages(data, offset, length);
      disk.write(offset, data);
    }
  });
  await expectError("ARM: get a missing disk", () => lro("GET", diskPath), 404, "ResourceNotFound");
  await expectError(
    "ARM: a request without a valid token",
    () => armFetch(armUrl(diskPath), "GET", undefined, "not-a-token"),
    401,
    "InvalidAuthenticationToken",
  );
  await check("ARM: create a disk by Import", async () => {
    const created = await lro("PUT", diskPath, {
      location: "westeurope",
      sku: { name: "Standard_LRS" },
      properties: {
        creationData: {
          createOption: "Import",
          sourceUri: source.url,
          storageAccountId: `${storage}/storageAccounts/${account}`,
        },
      },
    });
    expectSame(created.properties.provisioningState, "Succeeded", "provisioningState");
    return expectSame(created.properties.diskSizeBytes, size, "diskSizeBytes");
  });

  /** A VM's writes, through a Write SAS from beginGetAccess, revoked after. */
  const writeThroughSas = async (writes, clears) => {
    const sas = (await lro("POST", `${diskPath}/beginGetAccess`, { access: "Write", durationInSeconds: 600 }))
      .accessSAS;
    const client = new PageBlobClient(sas, new AnonymousCredential(), PIPELINE);
    for (const [offset, length, seed] of writes) {
      const data = pattern(seed, length);
      await client.uploadPages(data, offset, length);
      disk.write(offset, data);
    }
    for (const [offset, length] of clears) {
      await client.clearPages(offset, length);
      disk.clear(offset, length);
    }
    await lro("POST", `${diskPath}/endGetAccess`);
    return client;
  };
  const snapshot = async (name) => {
    const snap = await lro("PUT", `${prefix}/snapshots/${name}`, {
      location: "westeurope",
      properties: { incremental: true, creationData: { createOption: "Copy", sourceResourceId: diskPath } },
    });
    expect(snap.properties.incremental === true, "not incremental");
    return snap;
  };
  const grantRead = async (name) =>
    (
      await lro("POST", `${prefix}/snapshots/${name}/beginGetAccess`, {
        access: "Read",
        durationInSeconds: 600,
      })
    ).accessSAS;

  let m1;
  let m2;
  let writer;
  await check("ARM: write through a disk Write SAS, then revoke", async () => {
    writer = await writeThroughSas(
      [
        [MiB, 8 * PAGE, 61],
        [3 * MiB + 4 * PAGE, 4 * PAGE, 62],
      ],
      [[2 * PAGE, PAGE]],
    );
  });
  await expectError(
    "md- Write SAS refused after endGetAccess",
    () => writer.uploadPages(pattern(1, PAGE), 0, PAGE),
    403,
  );
  await check("ARM: incremental snapshot 1", async () => {
    const snap = await snapshot("jssnap1");
    m1 = disk.freeze();
    return snap.properties.incrementalSnapshotFamilyId ? "family id set" : "no family id";
  });
  await check("ARM: more writes, incremental snapshot 2", async () => {
    await writeThroughSas(
      [
        [0, PAGE, 71],
        [3 * MiB + 8 * PAGE, 16 * PAGE, 72],
        [12 * MiB, 2 * MiB, 73],
      ],
      [
        [9 * MiB, 4 * PAGE],
        [14 * MiB, PAGE],
      ],
    );
    await snapshot("jssnap2");
    m2 = disk.freeze();
  });
  let sas1;
  let sas2;
  await check("ARM: beginGetAccess Read on both snapshots", async () => {
    sas1 = await grantRead("jssnap1");
    sas2 = await grantRead("jssnap2");
    expect(new URL(sas2).pathname.split("/")[1].startsWith("md-"), "the SAS is not on an md- account");
  });
  const snap1 = new PageBlobClient(sas1 ?? "https://invalid/", new AnonymousCredential(), PIPELINE);
  const snap2 = new PageBlobClient(sas2 ?? "https://invalid/", new AnonymousCredential(), PIPELINE);
  await check("md- SAS: snapshot 2's bytes", async () =>
    expectBytes((await download(snap2, 0, size)).bytes, m2.read(0, size), "snapshot 2"),
  );
  await check("md- SAS: snapshot 1's bytes (a later snapshot changed nothing)", async () =>
    expectBytes((await download(snap1, 0, size)).bytes, m1.read(0, size), "snapshot 1"),
  );
  await check("md- SAS: valid ranges of snapshot 2, paged by 3", async () => {
    const { ranges } = await allPages(snap2.listPageRanges(0, size), 3);
    return expectSame(ranges, m2.valid(0, size), "ranges");
  });
  let diff = [];
  await check("md- SAS: diff snapshot 2 vs snapshot 1 by the previous snapshot's SAS URL", async () => {
    diff = pageOf(await snap2.getPageRangesDiffForManagedDisks(0, size, sas1));
    return expectSame(diff, m2.diff(m1, 0, size), "changed ranges");
  });
  await expectError(
    "md- SAS: a snapshot is read-only",
    () => snap2.uploadPages(pattern(1, PAGE), 0, PAGE),
    403,
  );

  // What the replicator does: a full copy of snapshot 1 by Put Page From URL, then snapshot 2's
  // diff applied (changed ranges copied, cleared ranges cleared); the target must equal snapshot 2.
  await check("replicate in JS: full copy of snapshot 1, then the diff to snapshot 2", async () => {
    const target = container.getPageBlobClient("replica.vhd");
    await target.create(size);
    const copyRanges = async (from, ranges) => {
      for (const [start, end] of ranges) {
        for (let at = start; at < end; at += 4 * MiB)
          await target.uploadPagesFromURL(from, at, at, Math.min(4 * MiB, end - at));
      }
    };
    await copyRanges(sas1, m1.valid(0, size));
    expectBytes((await download(target, 0)).bytes, m1.read(0, size), "after the full copy");
    await copyRanges(
      sas2,
      diff.filter((r) => !r[2]),
    );
    for (const [start, end] of diff.filter((r) => r[2])) await target.clearPages(start, end - start);
    return expectBytes((await download(target, 0)).bytes, m2.read(0, size), "after the diff");
  });

  await check("ARM: endGetAccess on both snapshots", async () => {
    await lro("POST", `${prefix}/snapshots/jssnap1/endGetAccess`);
    await lro("POST", `${prefix}/snapshots/jssnap2/endGetAccess`);
  });
  await expectError("md- SAS refused after endGetAccess", () => snap2.download(0, PAGE), 403);
  await check("ARM: delete the snapshots and the disk", async () => {
    for (const path of [`${prefix}/snapshots/jssnap2`, `${prefix}/snapshots/jssnap1`, diskPath])
      await lro("DELETE", path);
  });
  await expectError("ARM: the deleted disk is gone", () => lro("GET", diskPath), 404, "ResourceNotFound");
}
