// The oracle: the bytes and page history of a page blob, kept by this script alone (it shares no
// code and no rules with the emulator), and the hashes computed from its parameters.

import { createHash } from "node:crypto";

export const PAGE = 512;
export const MiB = 1024 * 1024;

/** A page blob as a map page index -> {data (null: cleared), seq}; seq orders every write and clear,
 * so a snapshot (a frozen copy) knows which pages changed after it. */
export class PageModel {
  constructor(size, pages = new Map(), seq = { n: 0 }) {
    this.size = size;
    this.pages = pages;
    this.clock = seq; // shared with the frozen copies: one order of events
    this.frozenAt = Infinity;
  }

  write(offset, data) {
    const op = ++this.clock.n;
    for (let at = 0; at < data.length; at += PAGE) {
      this.pages.set((offset + at) / PAGE, { data: data.slice(at, at + PAGE), seq: op });
    }
  }

  clear(offset, length) {
    const op = ++this.clock.n;
    for (let at = 0; at < length; at += PAGE) this.pages.set((offset + at) / PAGE, { data: null, seq: op });
  }

  freeze() {
    const copy = new PageModel(this.size, new Map(this.pages), this.clock);
    copy.frozenAt = this.clock.n;
    return copy;
  }

  read(offset, length) {
    const out = new Uint8Array(length);
    for (let page = Math.floor(offset / PAGE); page * PAGE < offset + length; page++) {
      const data = this.pages.get(page)?.data;
      if (!data) continue;
      const from = Math.max(offset, page * PAGE);
      const to = Math.min(offset + length, (page + 1) * PAGE);
      out.set(data.subarray(from - page * PAGE, to - page * PAGE), from - offset);
    }
    return out;
  }

  /** Valid ranges [start, end) in [from, to): written pages, adjacent ones joined. */
  valid(from = 0, to = this.size) {
    return runs(this, from, to, (entry) => (entry.data ? "data" : null));
  }

  /** Changed ranges since `base` (an older frozen copy of this blob): [start, end, cleared]. */
  diff(base, from = 0, to = this.size) {
    return runs(this, from, to, (entry) =>
      entry.seq > base.frozenAt ? (entry.data ? "data" : "clear") : null,
    );
  }
}

function runs(model, from, to, kindOf) {
  const out = [];
  const pages = [...model.pages.keys()].filter((p) => p * PAGE >= from && (p + 1) * PAGE <= to);
  for (const page of pages.sort((a, b) => a - b)) {
    const kind = kindOf(model.pages.get(page));
    if (!kind) continue;
    const last = out.at(-1);
    if (last && last[1] === page * PAGE && last[2] === (kind === "clear")) last[1] += PAGE;
    else out.push([page * PAGE, (page + 1) * PAGE, kind === "clear"]);
  }
  return out;
}

/** Deterministic bytes (xorshift32 from a seed): a failure reproduces with the same data. */
export function pattern(seed, length) {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** CRC-64/NVME (reflected 0x9A6C9329AC4BC9B5, init and xorout all ones), Azure Storage's CRC64,
 * as the eight little-endian bytes `x-ms-content-crc64` carries. Written here from the parameters,
 * not taken from the SDK or the emulator. */
const CRC_TABLE = (() => {
  const table = new Array(256);
  for (let n = 0n; n < 256n; n++) {
    let crc = n;
    for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ 0x9a6c9329ac4bc9b5n : crc >> 1n;
    table[Number(n)] = crc;
  }
  return table;
})();

export function crc64(data) {
  let crc = 0xffffffffffffffffn;
  for (const byte of data) crc = CRC_TABLE[Number((crc ^ BigInt(byte)) & 0xffn)] ^ (crc >> 8n);
  crc ^= 0xffffffffffffffffn;
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((crc >> BigInt(8 * i)) & 0xffn);
  return out;
}

export function md5(data) {
  return new Uint8Array(createHash("md5").update(data).digest());
}
