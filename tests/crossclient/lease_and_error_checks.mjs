// Leases, conditional requests and the documented error codes of refusals, on the blob the
// page-blob checks left behind; bearer, SAS and raw Shared Key authentication.

import { randomBytes, randomUUID } from "node:crypto";

import {
  AnonymousCredential,
  BlobServiceClient,
  PageBlobClient,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";

import { PIPELINE, download, sasFor, sharedKeyGet, tokenCredential } from "./blob_helpers.mjs";
import { check, expect, expectBytes, expectError, expectSame } from "./checks.mjs";
import { BLOB, RUN, TOKEN } from "./env.mjs";
import { MiB, PAGE, crc64, md5, pattern } from "./page_model.mjs";

export async function leasesConditionsErrors({ key, container, blob, model, account }) {
  const bearer = new BlobServiceClient(`${BLOB}/${account}`, tokenCredential(TOKEN), PIPELINE);
  const viaBearer = bearer.getContainerClient("crossclient").getPageBlobClient("disk.vhd");
  await check("bearer token: read what Shared Key wrote", async () =>
    expectBytes(
      (await download(viaBearer, 2 * MiB, 64 * 1024)).bytes,
      model.read(2 * MiB, 64 * 1024),
      "range",
    ),
  );

  const path = `/${account}/crossclient/disk.vhd`;
  await check("raw Shared Key GET with the standard Range header signed in its slot", async () => {
    const response = await sharedKeyGet(account, path, "bytes=4096-12287");
    expectSame(response.status, 206, "status");
    expectSame(response.headers.get("content-range"), `bytes 4096-12287/${model.size}`, "Content-Range");
    return expectBytes(new Uint8Array(await response.arrayBuffer()), model.read(4096, 8192), "range");
  });
  await check("raw Shared Key GET with the Range slot left empty is refused", async () => {
    const response = await sharedKeyGet(account, path, "bytes=4096-12287", false);
    return expectSame(
      [response.status, response.headers.get("x-ms-error-code")],
      [403, "AuthenticationFailed"],
      "answer",
    );
  });

  const data = pattern(41, PAGE);
  const lease = blob.getBlobLeaseClient();
  let leaseId;
  await check("acquire a lease (15 s)", async () => {
    leaseId = (await lease.acquireLease(15)).leaseId;
    return expectSame(leaseId, lease.leaseId, "lease id");
  });
  await expectError(
    "write without the lease id",
    () => blob.uploadPages(data, 0, PAGE),
    412,
    "LeaseIdMissing",
  );
  await expectError(
    "write with another lease id",
    () => blob.uploadPages(data, 0, PAGE, { conditions: { leaseId: randomUUID() } }),
    412,
    "LeaseIdMismatchWithBlobOperation",
  );
  await check("write with the lease id", async () => {
    await blob.uploadPages(data, 0, PAGE, { conditions: { leaseId } });
    model.write(0, data);
  });
  await expectError(
    "acquire a second lease",
    () => blob.getBlobLeaseClient(randomUUID()).acquireLease(15),
    409,
    "LeaseAlreadyPresent",
  );
  await check("release the lease", () => lease.releaseLease().then(() => "released"));
  await expectError(
    "write with a lease id after release",
    () => blob.uploadPages(data, 0, PAGE, { conditions: { leaseId } }),
    412,
    "LeaseNotPresentWithBlobOperation",
  );

  let etag;
  await check("get properties: size and ETag", async () => {
    const props = await blob.getProperties();
    etag = props.etag;
    return expectSame(props.contentLength, model.size, "Content-Length");
  });
  await expectError(
    "If-Match a stale ETag",
    () => blob.uploadPages(data, PAGE, PAGE, { conditions: { ifMatch: '"0x8D0000000000000"' } }),
    412,
    "ConditionNotMet",
  );
  await check("If-Match the current ETag", async () => {
    const r = await blob.uploadPages(data, PAGE, PAGE, { conditions: { ifMatch: etag } });
    model.write(PAGE, data);
    expect(r.etag !== etag, "the ETag did not change");
  });
  await expectError(
    "If-None-Match the current ETag on a read",
    async () => {
      const current = (await blob.getProperties()).etag;
      await blob.download(0, PAGE, { conditions: { ifNoneMatch: current } });
    },
    304,
  );
  await expectError(
    "create with If-None-Match: * over an existing blob",
    () => blob.create(model.size, { conditions: { ifNoneMatch: "*" } }),
    409,
    "BlobAlreadyExists",
  );
  await check("the blob is intact after every refusal", async () =>
    expectBytes((await download(blob, 0)).bytes, model.read(0, model.size), "blob"),
  );

  await expectError(
    "download a missing blob",
    () => container.getPageBlobClient("missing").download(),
    404,
    "BlobNotFound",
  );
  await expectError(
    "a missing container",
    () =>
      new BlobServiceClient(`${BLOB}/${account}`, key, PIPELINE)
        .getContainerClient(`none${RUN}`)
        .getProperties(),
    404,
    "ContainerNotFound",
  );
  await expectError(
    "unaligned Put Page",
    () => blob.uploadPages(pattern(1, PAGE), 100, PAGE),
    400,
    "InvalidHeaderValue",
  );
  await expectError(
    "Put Page beyond the end",
    () => blob.uploadPages(data, model.size, PAGE),
    416,
    "InvalidPageRange",
  );
  await expectError(
    "Get Blob beyond the end",
    () => blob.download(model.size + PAGE, PAGE),
    416,
    "InvalidRange",
  );
  await expectError(
    "Put Page with a wrong Content-MD5",
    () => blob.uploadPages(data, 0, PAGE, { transactionalContentMD5: md5(new Uint8Array(1)) }),
    400,
    "Md5Mismatch",
  );
  await expectError(
    "Put Page with a wrong x-ms-content-crc64",
    () => blob.uploadPages(data, 0, PAGE, { transactionalContentCrc64: crc64(new Uint8Array(1)) }),
    400,
    "Crc64Mismatch",
  );
  await expectError(
    "Shared Key with a wrong key",
    () => {
      const wrong = new StorageSharedKeyCredential(account, randomBytes(64).toString("base64"));
      return new PageBlobClient(blob.url, wrong, PIPELINE).getProperties();
    },
    403,
    "AuthenticationFailed",
  );
  await expectError(
    "a read-only SAS used to write",
    () => {
      const readOnly = `${blob.url}?${sasFor(key, "crossclient", "disk.vhd", "r")}`;
      return new PageBlobClient(readOnly, new AnonymousCredential(), PIPELINE).uploadPages(data, 0, PAGE);
    },
    403,
    "AuthorizationPermissionMismatch",
  );
  await expectError(
    "a bearer token the service did not issue",
    () =>
      new BlobServiceClient(`${BLOB}/${account}`, tokenCredential("not-a-token"), PIPELINE)
        .getContainerClient("crossclient")
        .getPageBlobClient("disk.vhd")
        .getProperties(),
    401,
    "InvalidAuthenticationInfo",
  );
}
