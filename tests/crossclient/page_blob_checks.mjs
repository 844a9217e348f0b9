// The page-blob surface: scattered writes and clears, Get Page Ranges (whole, windowed, paged with
// continuation tokens), ranged downloads with hashes, snapshots, diffs by prevsnapshot and by a
// snapshot's SAS URL, and Put Page From URL, each compared with the script's PageModel.

import {
  AnonymousCredential,
  BlobServiceClient,
  PageBlobClient,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";

import { PIPELINE, allPages, download, listed, pageOf, sasFor } from "./blob_helpers.mjs";
import { check, expect, expectBytes, expectError, expectHash, expectSame } from "./checks.mjs";
import { BLOB, KEY, RUN } from "./env.mjs";
import { MiB, PAGE, PageModel, crc64, md5, pattern } from "./page_model.mjs";

export async function pageBlobSurface() {
  const account = `js${RUN}`;
  const key = new StorageSharedKeyCredential(account, KEY);
  const service = new BlobServiceClient(`${BLOB}/${account}`, key, PIPELINE);
  const container = service.getContainerClient("crossclient");
  const size = 8 * MiB;
  const blob = container.getPageBlobClient("disk.vhd");
  const model = new PageModel(size);

  await check("shared key: create container", () => container.create().then(() => "201"));
  await expectError("create container again", () => container.create(), 409, "ContainerAlreadyExists");
  await check("create page blob", async () => {
    const r = await blob.create(size);
    expect(r.etag, "no ETag");
    return `${size} bytes`;
  });

  // Scattered aligned writes: a first page, a crossing of the 1 MiB mark, a full 4 MiB write, the
  // last page, pages with gaps between them (so listings have many ranges to page through).
  const writes = [
    [0, PAGE],
    [4096, 8192],
    [MiB - PAGE, 3 * PAGE],
    [2 * MiB, 4 * MiB],
    [size - PAGE, PAGE],
    ...[0, 1, 2, 3, 4, 5, 6].map((i) => [6 * MiB + i * 4 * PAGE, PAGE * (1 + (i % 2))]),
  ];
  for (const [offset, length] of writes) {
    await check(`upload pages ${offset}+${length}`, async () => {
      const data = pattern(offset + length, length);
      await blob.uploadPages(data, offset, length);
      model.write(offset, data);
    });
  }
  await check("upload pages with Content-MD5 answers it", async () => {
    const data = pattern(11, 2 * PAGE);
    const r = await blob.uploadPages(data, 5 * MiB, data.length, { transactionalContentMD5: md5(data) });
    model.write(5 * MiB, data);
    return expectHash(r.contentMD5, md5(data), "Content-MD5");
  });
  await check("upload pages with x-ms-content-crc64 answers it", async () => {
    const data = pattern(12, 4 * PAGE);
    const r = await blob.uploadPages(data, 5 * MiB + 8 * PAGE, data.length, {
      transactionalContentCrc64: crc64(data),
    });
    model.write(5 * MiB + 8 * PAGE, data);
    return expectHash(r.xMsContentCrc64, crc64(data), "x-ms-content-crc64");
  });
  await check("upload pages as a structured body (contentChecksumAlgorithm StorageCrc64)", async () => {
    const data = pattern(13, 3 * PAGE);
    await blob.uploadPages(data, 5 * MiB + 16 * PAGE, data.length, {
      contentChecksumAlgorithm: "StorageCrc64",
    });
    model.write(5 * MiB + 16 * PAGE, data);
  });
  for (const [offset, length] of [
    [4096 + 2 * PAGE, 2 * PAGE],
    [3 * MiB, 4 * PAGE],
    [7 * MiB, 8 * PAGE],
  ]) {
    await check(`clear pages ${offset}+${length}`, async () => {
      await blob.clearPages(offset, length);
      model.clear(offset, length);
    });
  }

  await check("get page ranges: every valid range", async () => {
    return expectSame(await listed(blob.listPageRanges()), model.valid(), "ranges");
  });
  await check("get page ranges: paged by 2 with continuation tokens", async () => {
    const { ranges, pages } = await allPages(blob.listPageRanges(), 2);
    expect(pages.length > 1, `one page only for ${ranges.length} ranges`);
    expectSame(ranges, model.valid(), "ranges");
    return `${ranges.length} ranges in ${pages.length} pages`;
  });
  await check("get page ranges: resumed from a continuation token", async () => {
    const first = (await blob.listPageRanges().byPage({ maxPageSize: 3 }).next()).value;
    expect(first.continuationToken, "no continuation token after 3 ranges");
    const rest = [];
    for await (const page of blob
      .listPageRanges()
      .byPage({ continuationToken: first.continuationToken, maxPageSize: 4 })) {
      rest.push(...pageOf(page));
    }
    return expectSame([...pageOf(first), ...rest], model.valid(), "ranges");
  });
  await check("get page ranges: a window clips the ranges", async () => {
    return expectSame(await listed(blob.listPageRanges(MiB, 5 * MiB)), model.valid(MiB, 6 * MiB), "ranges");
  });

  await check("download: whole blob", async () =>
    expectBytes((await download(blob, 0)).bytes, model.read(0, size), "blob"),
  );
  for (const [offset, count] of [
    [100, 1000],
    [MiB - 700, 2048],
    [2 * MiB + 12345, 3 * MiB],
    [size - 10, 10],
  ]) {
    await check(`download: range ${offset}+${count}`, async () => {
      const { response, bytes } = await download(blob, offset, count);
      expectSame(response.contentRange, `bytes ${offset}-${offset + count - 1}/${size}`, "Content-Range");
      return expectBytes(bytes, model.read(offset, count), "range");
    });
  }
  await check("download: x-ms-range-get-content-md5", async () => {
    const { response, bytes } = await download(blob, 4096, 8192, { rangeGetContentMD5: true });
    expectBytes(bytes, model.read(4096, 8192), "range");
    return expectHash(response.contentMD5, md5(bytes), "Content-MD5");
  });
  await check("download: x-ms-range-get-content-crc64", async () => {
    const { response, bytes } = await download(blob, 2 * MiB, MiB, { rangeGetContentCrc64: true });
    expectBytes(bytes, model.read(2 * MiB, MiB), "range");
    return expectHash(response.contentCrc64, crc64(bytes), "x-ms-content-crc64");
  });

  // Snapshots and diffs: s1, changes, s2, more changes on the live blob.
  let s1;
  let s2;
  let m1;
  let m2;
  await check("create snapshot 1", async () => {
    s1 = (await blob.createSnapshot()).snapshot;
    m1 = model.freeze();
    return s1;
  });
  await check("changes after snapshot 1", async () => {
    for (const [offset, length, seed] of [
      [4096, PAGE, 21],
      [2 * MiB + 3 * PAGE, 10 * PAGE, 22],
      [4 * MiB, 2 * PAGE, 23],
    ]) {
      const data = pattern(seed, length);
      await blob.uploadPages(data, offset, length);
      model.write(offset, data);
    }
    await blob.clearPages(0, PAGE);
    model.clear(0, PAGE);
    await blob.clearPages(6 * MiB + 4 * PAGE, 8 * PAGE); // written and unwritten pages alike
    model.clear(6 * MiB + 4 * PAGE, 8 * PAGE);
  });
  await check("create snapshot 2", async () => {
    s2 = (await blob.createSnapshot()).snapshot;
    m2 = model.freeze();
    return s2;
  });
  await check("changes after snapshot 2", async () => {
    const data = pattern(31, 4 * PAGE);
    await blob.uploadPages(data, MiB, data.length);
    model.write(MiB, data);
    await blob.clearPages(2 * MiB, PAGE);
    model.clear(2 * MiB, PAGE);
  });

  const snap1 = blob.withSnapshot(s1 ?? "");
  const snap2 = blob.withSnapshot(s2 ?? "");
  await check("download snapshot 1 (unchanged by later writes)", async () =>
    expectBytes((await download(snap1, 0)).bytes, m1.read(0, size), "snapshot 1"),
  );
  await check("page ranges of snapshot 2", async () => {
    return expectSame(await listed(snap2.listPageRanges()), m2.valid(), "ranges");
  });
  await check("diff blob vs snapshot 1 (prevsnapshot), paged by 2", async () => {
    const { ranges, pages } = await allPages(blob.listPageRangesDiff(0, size, s1), 2);
    expectSame(ranges, model.diff(m1), "changed ranges");
    return `${ranges.length} ranges in ${pages.length} pages`;
  });
  await check("diff snapshot 2 vs snapshot 1 (prevsnapshot)", async () => {
    return expectSame(await listed(snap2.listPageRangesDiff(0, size, s1)), m2.diff(m1), "changed ranges");
  });
  await check("diff snapshot 2 vs snapshot 1 in a window", async () => {
    const got = pageOf(await snap2.getPageRangesDiff(2 * MiB, 4 * MiB, s1));
    return expectSame(got, m2.diff(m1, 2 * MiB, 6 * MiB), "changed ranges");
  });
  const s1Sas = `${snap1.url}&${sasFor(key, "crossclient", "disk.vhd", "r", s1)}`;
  await check("diff snapshot 2 vs snapshot 1 by SAS URL (x-ms-previous-snapshot-url)", async () => {
    const got = pageOf(await snap2.getPageRangesDiffForManagedDisks(0, size, s1Sas));
    return expectSame(got, m2.diff(m1), "changed ranges");
  });
  await check("SAS (sr=bs): read snapshot 1 through its own SAS", async () => {
    const client = new PageBlobClient(s1Sas, new AnonymousCredential(), PIPELINE);
    return expectBytes((await download(client, 2 * MiB, MiB)).bytes, m1.read(2 * MiB, MiB), "range");
  });

  // Put Page From URL: a copy of snapshot 2 built from its SAS URL, range by range.
  const copy = container.getPageBlobClient("copy.vhd");
  const copied = new PageModel(size);
  const s2Sas = `${snap2.url}&${sasFor(key, "crossclient", "disk.vhd", "r", s2)}`;
  await check("put page from URL: valid ranges of snapshot 2, shifted by 512", async () => {
    await copy.create(size);
    let chunks = 0;
    for (const [start, end] of m2.valid(0, size - PAGE)) {
      for (let at = start; at < end; at += 4 * MiB) {
        const length = Math.min(4 * MiB, end - at);
        await copy.uploadPagesFromURL(s2Sas, at, at + PAGE, length);
        copied.write(at + PAGE, m2.read(at, length));
        chunks++;
      }
    }
    expectBytes((await download(copy, 0)).bytes, copied.read(0, size), "copy");
    return `${chunks} copies`;
  });
  await check("put page from URL: a source hole is written as zeros and becomes valid", async () => {
    await copy.uploadPagesFromURL(s2Sas, 6 * MiB + 4 * PAGE, 7 * MiB + 32 * PAGE, 8 * PAGE);
    copied.write(7 * MiB + 32 * PAGE, m2.read(6 * MiB + 4 * PAGE, 8 * PAGE));
    return expectSame(await listed(copy.listPageRanges()), copied.valid(), "ranges");
  });
  await check("put page from URL with x-ms-source-content-md5 answers Content-MD5", async () => {
    const source = m2.read(2 * MiB, 4 * PAGE);
    const r = await copy.uploadPagesFromURL(s2Sas, 2 * MiB, 0, source.length, {
      sourceContentMD5: md5(source),
    });
    copied.write(0, source);
    return expectHash(r.contentMD5, md5(source), "Content-MD5");
  });
  await check("put page from URL with x-ms-source-content-crc64 answers x-ms-content-crc64", async () => {
    const source = m2.read(4096, 4 * PAGE);
    const r = await copy.uploadPagesFromURL(s2Sas, 4096, 4096, source.length, {
      sourceContentCrc64: crc64(source),
    });
    copied.write(4096, source);
    return expectHash(r.xMsContentCrc64, crc64(source), "x-ms-content-crc64");
  });
  await expectError(
    "put page from URL: a wrong source MD5",
    () => copy.uploadPagesFromURL(s2Sas, 0, 0, PAGE, { sourceContentMD5: md5(new Uint8Array(1)) }),
    400,
  );
  await check("copy equals its model after every copy", async () =>
    expectBytes((await download(copy, 0)).bytes, copied.read(0, size), "copy"),
  );

  return { key, container, blob, model, account };
}
